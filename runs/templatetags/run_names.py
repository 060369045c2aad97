"""Template filters for run pages: actors by their full names."""

from django import template

register = template.Library()


@register.filter
def actor_name(names: dict[str, str], short_name: str | None) -> str:
    """`{{ names|actor_name:decision.actor }}`: the actor's full name, or the short name if unknown."""
    if not short_name:
        return "the world"
    return names.get(short_name, short_name) if isinstance(names, dict) else short_name
