"""The runs router of the JSON API."""

from ninja import Router

router = Router(tags=["runs"])
