"""A JSON field whose mappings come back in the order they were written, on every profile."""

from __future__ import annotations

import json

from django.db import models


class OrderedJSONField(models.JSONField):
    """Django's JSONField is `jsonb` on PostgreSQL, which stores an object's keys shortest first: a scenario's
    QA checks, rules and outside events (which the engine plays in the order their author wrote) would come back
    reordered on the scale-out profile only. This field is `json` there, kept as written. Nothing queries inside
    these fields, so jsonb's operators are not missed. SQLite keeps text as written already."""

    def db_type(self, connection):
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        from psycopg.types.json import Json  # jsonb's adapter would reorder the keys on their way in

        if not prepared:
            value = self.get_prep_value(value)
        return Json(value, dumps=lambda obj: json.dumps(obj, cls=self.encoder))

    def from_db_value(self, value, expression, connection):
        if connection.vendor == "postgresql":
            return value  # psycopg parses `json` itself, keeping the order (a JSON string comes back a str)
        return super().from_db_value(value, expression, connection)
