"""Numbers on the batch pages: rates as percentages, and a dash where there is no value (one run has no SD)."""

from django import template
from django.template.defaultfilters import floatformat

register = template.Library()


@register.filter
def percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


@register.filter
def or_dash(value, digits: int = 3) -> str:
    return "—" if value is None else floatformat(value, digits)
