"""The run page's first render: the stored run at a snapshot seq, untrusted text made inert, the admin panel."""

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from engine import EventType
from runs.reading import EVERYTHING
from runs.execution import executor
from runs.live import event_fragments
from runs.record_selectors import snapshot_seq
from runs.selectors import cost_breakdown_at
from runs.models import Decision, RunEvent
from runs.tests.factories import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client):
    user = User.objects.create_user("owner", password="pw")
    client.force_login(user)
    return user


def test_a_finished_run_shows_its_turns_costs_provider_and_controls(client, owner):
    run = executor.run_execute(run_id=make_run(turns=2, owner=owner).pk)
    page = client.get(reverse("runs:detail", args=[run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="turn-1"' in html and 'id="turn-2"' in html and 'id="world-2"' in html
    for actor in run.actors:
        assert f'id="decision-2-{actor["short_name"]}"' in html
    assert "offline-badge" in html and "no language model was called" in html
    assert f'data-after="{snapshot_seq(run)}"' in html
    assert 'status status-completed' in html
    assert reverse("runs:markdown_zip", args=[run.pk]) in html
    # A completed run offers more turns (the end turn asked for), but neither Pause nor Cancel.
    assert "/pause/" not in html and "/cancel/" not in html
    assert re.search(r'name="end_turn" value="3" required', html) and "Play more turns" in html


def test_the_snapshot_costs_count_only_lines_announced_up_to_its_seq():
    run = executor.run_execute(run_id=make_run(turns=1).pk)
    middle = RunEvent.objects.filter(run=run, type=EventType.COST_INCURRED).order_by("seq")[5].seq
    assert cost_breakdown_at(run, middle)["calls"] == 6
    assert cost_breakdown_at(run, 10**9)["calls"] == run.calls


def test_model_text_reaches_the_page_inert():
    hostile = {"seq": 9, "type": "actor_decision_completed", "data": {
        "turn": 1, "actor": "norvale", "action": 'We agree. <script>alert("x")</script> <img src=x onerror=alert(1)>',
        "reasoning": "[click](javascript:alert(1))", "short_term_priorities": ["<b onclick=x>p</b>"]}}
    html = "".join(f["html"] for f in event_fragments(hostile, run_id=1, names={"norvale": "Norvale"}, max_turns=3, reader=EVERYTHING)["fragments"])
    tags = Elements()
    tags.feed(html)
    assert "script" not in [tag for tag, _ in tags.found] and "img" not in [tag for tag, _ in tags.found]
    attributes = [(name, value or "") for _, attrs in tags.found for name, value in attrs]
    assert not [name for name, _ in attributes if name.startswith("on")], "no event handler attribute"
    assert not [value for _, value in attributes if "javascript:" in value.lower()]
    assert "We agree." in html and "&lt;script&gt;" in html, "the text is shown, as text"


class Elements(HTMLParser):
    """Every element and its attributes, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def test_the_admin_run_page_has_the_live_panel(client):
    admin = User.objects.create_superuser("admin", "a@example.org", "pw")
    client.force_login(admin)
    run = executor.run_execute(run_id=make_run(turns=1).pk)
    html = client.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()
    assert f'data-socket="/ws/runs/{run.pk}/"' in html and "run-live.js" in html and 'id="turn-progress"' in html
    assert Decision.objects.filter(run=run).exists()
