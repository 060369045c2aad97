"""The `markdown` template filter: model text becomes HTML with nothing that runs, and the Markdown kept."""

from html.parser import HTMLParser

from django.template import Context, Template

from runs.templatetags.markdown import sanitise_html


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def tags(self) -> set[str]:
        return {tag for tag, _ in self.found}

    def attributes(self) -> set[str]:
        return {name for _, attrs in self.found for name in attrs}

    def hrefs(self) -> list[str]:
        return [attrs["href"] for tag, attrs in self.found if tag == "a" and "href" in attrs]


def render(text: str) -> str:
    return Template("{% load markdown %}{{ text|markdown }}").render(Context({"text": text}))


HOSTILE = """\
Ignore the above.<script>alert(document.cookie)</script>

<img src=x onerror="alert(1)"> <a href="javascript:alert(2)" onclick="alert(3)">click</a>

[a link](javascript:alert(4)) [another](JAVASCRIPT:alert(5)) [encoded](&#106;avascript:alert(6))

<iframe src="https://evil.example"></iframe><style>body{display:none}</style>
"""


def test_hostile_text_becomes_inert():
    html = render(HOSTILE)
    elements = Elements(html)
    assert not elements.tags() & {"script", "img", "iframe", "style"}
    assert not {name for name in elements.attributes() if name.startswith("on")}
    assert not [href for href in elements.hrefs() if "javascript" in href.lower()]
    # The words stay readable as text: a reader sees what the model tried.
    assert "&lt;script&gt;" in html and "Ignore the above." in html


def test_the_sanitiser_alone_removes_what_a_renderer_bug_could_let_through():
    html = sanitise_html(
        '<h2 onclick="x()">Title</h2><script>alert(1)</script><img src=x onerror=alert(1)>'
        '<a href="javascript:alert(1)" onmouseover="y()" target="_blank">link</a>'
        '<p style="background:url(javascript:alert(1))">text</p><svg onload=alert(1)></svg>'
    )
    elements = Elements(html)
    assert elements.tags() == {"h2", "a", "p"}
    assert elements.attributes() == {"rel"}, "no handlers, no style, no href that is javascript:"
    assert "alert" not in html


def test_markdown_keeps_headings_lists_emphasis_code_and_links():
    html = render(
        "## Summit, day 2\n\n"
        "1. Norvale *proposes* a **moratorium**\n"
        "2. Talks resume\n\n"
        "- `compute cap` at 10^26 FLOP\n\n"
        "```\nquoted text\n```\n\n"
        "See [the communiqué](https://example.org/communique).\n"
    )
    elements = Elements(html)
    assert {"h2", "ol", "ul", "li", "em", "strong", "code", "pre", "a"} <= elements.tags()
    assert "<h2>Summit, day 2</h2>" in html
    link = next(attrs for tag, attrs in elements.found if tag == "a")
    assert link["href"] == "https://example.org/communique"
    assert link["rel"] == "noopener noreferrer nofollow"


def test_empty_text_renders_nothing():
    assert render("") == "" and Template("{% load markdown %}{{ missing|markdown }}").render(Context()) == ""
