"""Template filters for run pages: actors by their full names, models as what played them."""

from django import template

from engine.llm.offline import played_by as _played_by

register = template.Library()


@register.filter
def actor_name(names: dict[str, str], short_name: str | None) -> str:
    """`{{ names|actor_name:decision.actor }}`: the actor's full name, or the short name if unknown."""
    if not short_name:
        return "the world"
    return names.get(short_name, short_name) if isinstance(names, dict) else short_name


@register.filter
def played_by(model: str, provider: str) -> str:
    """`{{ decision.model|played_by:decision.provider }}`: "offline (stands in for …)" for an offline answer."""
    return _played_by(model or "", provider or "")
