"""The scenarios router of the JSON API (stub: the scenarios API work fills it in)."""

from ninja import Router

router = Router(tags=["scenarios"])
