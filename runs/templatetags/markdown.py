"""`{{ text|markdown }}`: untrusted model text (world states, decisions, messages) rendered as safe HTML."""

from __future__ import annotations

import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

register = template.Library()

# Raw HTML in the text is shown as text, not passed through; tables and strikethrough are what models write
# beyond CommonMark. Images are off, so `![alt](url)` stays readable text instead of an empty hole (the
# sanitiser would drop the <img>). The sanitiser still runs, so a renderer bug cannot put markup on a page.
_renderer = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"]).disable("image")

# No images: a model could otherwise make every reader's browser fetch a URL of its choosing.
ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
    "em", "strong", "s", "del", "a", "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def sanitise_html(html: str) -> SafeString:
    """Only the tags and attributes above; no scripts, event handlers or javascript: URLs; links never
    pass the page's address on or lend it their ranking."""
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(cleaned)  # noqa: S308 - what nh3 lets through is safe to show


def render_markdown(text: str | None) -> SafeString:
    return sanitise_html(_renderer.render(text or ""))


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    return render_markdown(text)
