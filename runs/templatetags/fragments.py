"""`{% csrf_field %}`: a form's CSRF token where the page has one, nothing in a fragment rendered without a
request (run-live.js gives such forms the page's token)."""

from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag(takes_context=True)
def csrf_field(context) -> str:
    token = context.get("csrf_token")
    if not token or str(token) == "NOTPROVIDED":
        return ""
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', token)
