"""`{% call_link turn=… task=… actor=… subject=… %}`: "show the call" for a record a model made, pointing at the
run's calls page filtered to the calls behind it (re-asks included). Relative to the run page, where the
record's partial is shown live and on load alike."""

from urllib.parse import urlencode

from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def call_link(turn, task: str, actor: str | None = None, subject: str | None = None, label: str = "show the call"):
    query = {"turn": turn, "task": task}
    if actor:
        query["actor"] = actor
    if subject:
        query["subject"] = subject
    return format_html('<a class="call-link" href="calls/?{}">{}</a>', urlencode(query), label)
