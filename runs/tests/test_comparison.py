"""runs.comparison: stored runs side by side, from real offline runs in the database; its API and its page."""

import dataclasses
import difflib
import json
import re
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from engine.visibility import FULL
from runs.execution import executor
from runs.comparison import ComparisonError, MetricRow, RunNotFound, diff_lines, run_comparison
from runs.models import Decision, MetricRecord, Run, RunStatus, Turn
from runs.templatetags.markdown import render_markdown
from runs.tests.factories import make_run

# "__all__": runs publish to the embedded profile's channel layer, which has a database of its own.
pytestmark = pytest.mark.django_db(databases="__all__")


def in_full(run):  # what staff and the terminal read of every run
    return FULL


def played(**params):
    return executor.run_execute(run_id=make_run(**params).pk)


def test_two_runs_side_by_side():
    first, second = played(turns=2, seed=1), played(turns=2, seed=2)

    comparison = run_comparison(viewpoint_of=in_full, run_ids=[second.pk, first.pk])

    assert [run.id for run in comparison.runs] == [second.pk, first.pk]  # the order asked for
    for compared, run in zip(comparison.runs, [second, first]):
        assert (compared.scenario, compared.status, compared.turn, compared.offline) == ("ai-summit", "completed", 2, True)
        assert compared.calls == run.calls > 0
        assert {"world", "norvale", "meridian"} <= set(compared.cost_by_actor)
        assert {"decision", "world_update"} <= set(compared.cost_by_phase)
        assert sum(compared.cost_by_phase.values()) == pytest.approx(run.total_cost)
    names = {row.metric for row in comparison.metrics}
    assert "signatories" in names
    assert {(row.metric, row.turn) for row in comparison.metrics} == {(name, turn) for name in names for turn in (1, 2)}
    assert all(len(row.values) == 2 and None not in row.values for row in comparison.metrics)

    assert comparison.decision_turn == 2
    actors = [row.actor for row in comparison.decisions]
    assert actors == [seat["short_name"] for seat in first.actors]
    norvale = comparison.decisions[0]
    assert norvale.decisions[1].action == Decision.objects.get(run=first, turn=2, actor="norvale").action

    (world,) = comparison.world_diffs
    assert (world.base_run, world.base_turn, world.run, world.turn) == (second.pk, 2, first.pk, 2)
    assert world.diff.startswith(f"--- run {second.pk}, turn 2\n+++ run {first.pk}, turn 2\n@@")
    json.dumps(comparison.as_dict())  # JSON-ready for the terminal, a page or the API


def test_runs_with_the_same_seed_end_in_the_same_world():
    first, second = played(turns=1, seed=3), played(turns=1, seed=3)
    comparison = run_comparison(viewpoint_of=in_full, run_ids=[first.pk, second.pk])
    assert comparison.world_diffs[0].diff == ""
    assert all(row.values[0] == row.values[1] for row in comparison.metrics)


def test_runs_of_different_lengths():
    longer, shorter, queued = played(turns=2, seed=1), played(turns=1, seed=1), make_run(turns=2)

    by_default = run_comparison(viewpoint_of=in_full, run_ids=[longer.pk, shorter.pk])
    assert by_default.decision_turn == 1  # the last turn both completed
    assert all(None not in row.decisions for row in by_default.decisions)
    assert {row.values[1] for row in by_default.metrics if row.turn == 2} == {None}
    assert by_default.world_diffs[0].turn == 1 and by_default.world_diffs[0].base_turn == 2

    at_two = run_comparison(viewpoint_of=in_full, run_ids=[longer.pk, shorter.pk], turn=2)
    assert all(row.decisions[0] is not None and row.decisions[1] is None for row in at_two.decisions)

    not_started = run_comparison(viewpoint_of=in_full, run_ids=[longer.pk, queued.pk])
    assert not_started.decision_turn is None and not_started.decisions == ()
    assert not_started.runs[1].status == "queued" and not_started.runs[1].cost_by_actor == {}
    start = Turn.objects.get(run=queued, turn=0).world_state
    assert f"+++ run {queued.pk}, turn 0" in not_started.world_diffs[0].diff and start.splitlines()[0] in not_started.world_diffs[0].diff


def test_a_run_named_twice_is_compared_once():
    first, second = played(turns=1, seed=1), played(turns=1, seed=2)
    compared = run_comparison(viewpoint_of=in_full, run_ids=[first.pk, second.pk, first.pk])
    assert [run.id for run in compared.runs] == [first.pk, second.pk]


@pytest.mark.parametrize(
    ("ids", "turn", "error", "message"),
    [
        (lambda a, b: [a, 99999, 99998], None, RunNotFound, "No run 99999, 99998."),
        (lambda a, b: [a, 2**70], None, RunNotFound, f"No run {2**70}."),  # past the database's integers: no run
        (lambda a, b: [], None, ComparisonError, "Name at least two different runs to compare."),
        (lambda a, b: [a], None, ComparisonError, "Name at least two different runs to compare."),
        (lambda a, b: [a, a], None, ComparisonError, "Name at least two different runs to compare."),
        (lambda a, b: list(range(1, 22)), None, ComparisonError, "Compare at most 20 runs at once, not 21."),
        (lambda a, b: [a, b], 0, ComparisonError, "--turn 0: pick a turn from 1 to 1 (the runs completed turns 1, 1)."),
        (lambda a, b: [a, b], 2, ComparisonError, "--turn 2: pick a turn from 1 to 1"),
    ],
)
def test_bad_input_says_what(ids, turn, error, message):
    a, b = played(turns=1).pk, played(turns=1).pk
    with pytest.raises(error) as caught:
        run_comparison(viewpoint_of=in_full, run_ids=ids(a, b), turn=turn)
    assert str(caught.value).startswith(message)
    assert caught.value.field == ("turn" if turn is not None else "ids")


def test_a_turn_before_any_run_has_played_one():
    with pytest.raises(ComparisonError, match=r"^--turn 1: none of the runs has completed a turn yet\.$"):
        run_comparison(viewpoint_of=in_full, run_ids=[make_run().pk, make_run().pk], turn=1)


def test_only_the_runs_among_those_given_can_be_compared():
    mine, theirs = played(turns=1), played(turns=1)
    with pytest.raises(RunNotFound, match=rf"^No run {theirs.pk}\.$"):  # as if it did not exist
        run_comparison(viewpoint_of=in_full, run_ids=[mine.pk, theirs.pk], among=Run.objects.filter(pk=mine.pk))


def test_a_fixed_number_of_queries_however_many_runs(django_assert_num_queries):
    runs = [played(turns=2, seed=seed) for seed in range(4)]
    for count in (2, 4):
        # the runs, cost by actor, cost by phase, metrics, decisions at the turn, the last worlds
        with django_assert_num_queries(6):
            compared = run_comparison(viewpoint_of=in_full, run_ids=[run.pk for run in runs[:count]])
        assert len(compared.runs) == count and all(len(row.values) == count for row in compared.metrics)


def test_cost_rows_line_up_one_column_per_run():
    first, second = played(turns=1, seed=1), played(turns=1, seed=2)
    comparison = run_comparison(viewpoint_of=in_full, run_ids=[first.pk, second.pk])
    by_actor = dict(comparison.cost_rows("actor"))
    assert list(by_actor)[0] == "world" and {"norvale", "meridian"} <= set(by_actor)
    assert by_actor["norvale"] == (comparison.runs[0].cost_by_actor["norvale"], comparison.runs[1].cost_by_actor["norvale"])
    by_phase = dict(comparison.cost_rows("phase"))
    assert {"decision", "world_update"} <= set(by_phase)
    one_sided = dataclasses.replace(comparison, runs=(comparison.runs[0], dataclasses.replace(comparison.runs[1], cost_by_phase={})))
    assert all(costs[1] is None for _, costs in one_sided.cost_rows("phase"))
    assert comparison.actor_names["norvale"] == next(a["name"] for a in first.actors if a["short_name"] == "norvale")


def test_metric_charts_overlay_the_runs_per_metric():
    longer, shorter = played(turns=2, seed=1), played(turns=1, seed=2)
    comparison = run_comparison(viewpoint_of=in_full, run_ids=[longer.pk, shorter.pk])
    charts = {chart["metric"]: chart for chart in comparison.metric_charts()}
    signatories = charts["signatories"]
    assert signatories["turns"] == [1, 2]
    assert [line["run"] for line in signatories["series"]] == [longer.pk, shorter.pk]
    assert signatories["series"][0]["label"] == f"#{longer.pk} ai-summit run-{longer.number:03d}"
    assert signatories["series"][1]["values"][1] is None  # the shorter run has no turn 2: a gap
    expected = MetricRecord.objects.get(run=longer, turn=2, name="signatories").value
    assert signatories["series"][0]["values"][1] == expected

    words = dataclasses.replace(comparison, metrics=(
        MetricRow("mood", 1, ("calm", "tense")), MetricRow("agreed", 1, (True, False)), MetricRow("score", 1, (2, "n/a")),
    ))
    assert [(chart["metric"], [line["values"] for line in chart["series"]]) for chart in words.metric_charts()] == [
        ("score", [[2], [None]]),  # only numbers are drawn; text and yes/no stay in the table
    ]


def test_diff_lines_mark_the_lines_and_the_words_that_changed():
    diff = "\n".join(difflib.unified_diff(
        ["a", "the cat sat <b>", "c", "gone"], ["a", "the dog sat <b>", "c", "new", "more"],
        fromfile="run 1, turn 2", tofile="run 2, turn 2", lineterm=""))
    lines = diff_lines(diff)
    assert [(line.kind, line.sign) for line in lines] == [
        ("file", ""), ("file", ""), ("hunk", ""), ("context", " "), ("removed", "-"), ("added", "+"), ("context", " "),
        ("removed", "-"), ("added", "+"), ("added", "+"),
    ]
    removed, added = lines[4], lines[5]
    assert [text for changed, text in removed.segments if changed] == ["cat"]
    assert [text for changed, text in added.segments if changed] == ["dog"]
    assert "".join(text for _, text in added.segments) == "the dog sat <b>"  # the text as it is: escaping is the page's
    assert lines[7].segments == ((True, "gone"),) and lines[9].segments == ((False, "more"),)
    assert diff_lines("") == []

    phrase = diff_lines("\n".join(difflib.unified_diff(["the big red cat"], ["the small blue cat"], lineterm="")))
    assert phrase[-2].segments == ((False, "the "), (True, "big red"), (False, " cat"))  # a changed phrase is one mark
    assert phrase[-1].segments == ((False, "the "), (True, "small blue"), (False, " cat"))


def test_diff_lines_of_huge_lines_mark_them_whole():
    old, new = " ".join(["word"] * 2000), " ".join(["other"] * 2000)
    lines = diff_lines("\n".join(difflib.unified_diff([old], [new], lineterm="")))
    assert lines[-2].segments == ((True, old),) and lines[-1].segments == ((True, new),)


# ---- the API: GET /api/runs/compare ---------------------------------------------------------------------------
@pytest.fixture
def people():
    return {
        "owner": User.objects.create_user("owner", password="pw"),
        "other": User.objects.create_user("other", password="pw"),
        "staff": User.objects.create_user("staff", password="pw", is_staff=True),
    }


@pytest.fixture
def two(people):
    """Two completed two-turn runs of the owner's, different seeds."""
    return [played(turns=2, seed=seed, owner=people["owner"]) for seed in (1, 2)]


@pytest.fixture
def stored(people):
    """Two of the owner's runs said to have completed two turns, not played: enough for permissions and bad input."""
    runs = [make_run(turns=2, owner=people["owner"]) for _ in range(2)]
    Run.objects.filter(pk__in=[run.pk for run in runs]).update(turn=2, status=RunStatus.COMPLETED)
    return runs


def browser(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def api_compare(user, query: str):
    return browser(user).get(f"/api/runs/compare?{query}")


def ids_query(runs, **extra) -> str:
    return urlencode([("ids", run.pk) for run in runs] + list(extra.items()))


def assert_error(response, status, code, message=""):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"].startswith(message) and isinstance(body["fields"], list)
    return body


def test_api_compares_as_the_command_does(people, two):
    first, second = two
    response = api_compare(people["owner"], ids_query(two, turn=1))
    assert response.status_code == 200, response.content
    body = response.json()
    expected = run_comparison(viewpoint_of=in_full, run_ids=[first.pk, second.pk], turn=1).as_dict()
    for run in body["runs"]:
        assert run.pop("page").endswith(f"/runs/{run['id']}/")
    assert body == json.loads(json.dumps(expected))  # one implementation: the selector's structure, as JSON
    assert body["decision_turn"] == 1 and body["last_turn"] == 2
    assert body["runs"][0]["cost_by_phase"] and body["runs"][1]["final_world"]
    assert body["world_diffs"][0]["diff"].startswith(f"--- run {first.pk}, turn 2\n+++ run {second.pk}, turn 2")
    assert {"signatories"} <= {row["metric"] for row in body["metrics"]}


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("other", 404), ("owner", 200), ("staff", 200)])
def test_api_who_may_compare(people, stored, who, status):
    response = api_compare(people.get(who), ids_query(stored))
    if status == 200:
        assert response.status_code == 200 and len(response.json()["runs"]) == 2
    else:
        assert_error(response, status, {401: "unauthenticated", 404: "not_found"}[status])


def test_api_a_strangers_run_is_no_run(people, stored):
    theirs = make_run(owner=people["other"])
    body = assert_error(api_compare(people["owner"], ids_query([stored[0], theirs])), 404, "not_found")
    assert body["message"] == f"No run {theirs.pk}."  # the same words as for a run that does not exist


def test_api_public_read_lets_anyone_compare(settings, people, stored):
    settings.PUBLIC_READ = True
    assert api_compare(None, ids_query(stored)).status_code == 200
    assert api_compare(people["other"], ids_query(stored)).status_code == 200


@pytest.mark.parametrize(
    ("query", "status", "code", "message"),
    [
        ("ids={a}", 400, "bad_request", "Name at least two different runs to compare."),
        ("ids={a}&ids={a}", 400, "bad_request", "Name at least two different runs to compare."),
        ("ids={a}&ids=99999", 404, "not_found", "No run 99999."),
        ("ids={a}&ids={b}&turn=3", 400, "bad_request", "--turn 3: pick a turn from 1 to 2 (the runs completed turns 2, 2)."),
        ("ids={a}&ids={b}&turn=-1", 400, "bad_request", "--turn -1: pick a turn from 1 to 2"),
        ("ids={a}&ids={b}&turn=99999999999999999999999", 400, "bad_request", "--turn 99999999999999999999999: pick"),
        ("", 422, "invalid_request", "the request does not match the schema"),
        ("ids={a}&ids=x", 422, "invalid_request", "the request does not match the schema"),
        ("ids={a}&ids=99999999999999999999999", 422, "invalid_request", "the request does not match the schema"),
        ("ids={a}&ids={b}&turn=x", 422, "invalid_request", "the request does not match the schema"),
        ("&".join(f"ids={n}" for n in range(1, 22)), 422, "invalid_request", "the request does not match the schema"),
    ],
)
def test_api_bad_input_is_a_clear_error(people, stored, query, status, code, message):
    body = assert_error(api_compare(people["owner"], query.format(a=stored[0].pk, b=stored[1].pk)), status, code, message)
    if status == 400:
        assert body["fields"][0]["loc"] == ["query", "turn" if "turn" in query else "ids"]


# ---- the page: /runs/compare/ -----------------------------------------------------------------------------------
def test_the_page_shows_the_runs_side_by_side(people, two):
    first, second = two
    response = browser(people["owner"]).get(f"{reverse('runs:compare')}?{ids_query(two)}")
    assert response.status_code == 200
    html = response.content.decode()
    for run in two:
        assert f'id="compare-run-{run.pk}"' in html and f'href="{reverse("runs:detail", args=[run.pk])}"' in html
        assert f'<input type="hidden" name="ids" value="{run.pk}">' in html
    assert 'id="compare-cost-by-actor"' in html and 'id="compare-cost-by-phase"' in html and "the world" in html
    charts = json.loads(re.search(r'<script id="compare-charts-data" type="application/json">(.*?)</script>', html, re.S)[1])
    assert charts == run_comparison(viewpoint_of=in_full, run_ids=[first.pk, second.pk]).metric_charts()
    assert html.count("<canvas data-chart=") == len(charts) > 0
    assert "vendor/chart.js/chart.umd.min.js" in html and "js/compare.js" in html
    assert 'id="compare-metrics"' in html  # the table behind the charts
    assert "Decisions at turn 2" in html and '<option value="2" selected>' in html and '<option value="1">' in html
    norvale = Decision.objects.get(run=second, turn=2, actor="norvale")
    assert str(render_markdown(norvale.action)) in html
    assert f'id="world-diff-{second.pk}"' in html
    assert f"Run #{second.pk} (turn 2) against run #{first.pk} (turn 2)" in html

    at_one = browser(people["owner"]).get(f"{reverse('runs:compare')}?{ids_query(two, turn=1)}").content.decode()
    assert "Decisions at turn 1" in at_one and '<option value="1" selected>' in at_one


def test_the_page_escapes_model_text(people, two):
    first, second = two
    attack = '<script>alert("x")</script> <img src=x onerror=alert(1)>'
    Turn.objects.filter(run=second, turn=2).update(world_state=f"{attack}\n\nThe summit ends.")
    Decision.objects.filter(run=second, turn=2, actor="norvale").update(action=attack, reasoning=attack)
    html = browser(people["owner"]).get(f"{reverse('runs:compare')}?{ids_query(two)}").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html  # in the diff, as text


def test_the_page_of_runs_with_no_turn_in_common(people):
    queued = [make_run(turns=2, owner=people["owner"]) for _ in range(2)]
    response = browser(people["owner"]).get(f"{reverse('runs:compare')}?{ids_query(queued)}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "None of the runs has completed a turn yet." in html and "No model calls booked yet." in html
    assert "No metric recorded in these runs yet." in html and "compare-charts-data" not in html
    assert "The same world, word for word." in html


@pytest.mark.parametrize(("who", "status"), [("other", 404), ("owner", 200), ("staff", 200)])
def test_the_page_is_for_people_who_may_see_every_run(people, stored, who, status):
    response = browser(people[who]).get(f"{reverse('runs:compare')}?{ids_query(stored)}")
    assert response.status_code == status
    if status == 404:
        assert f"No run {stored[0].pk}, {stored[1].pk}." in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(stored):
    url = f"{reverse('runs:compare')}?{ids_query(stored)}"
    response = browser().get(url)
    assert response.status_code == 302 and response.url.startswith(reverse("login") + "?next=")


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "Name at least two different runs to compare."),
        ("ids={a}", 400, "Name at least two different runs to compare."),
        ("ids={a}&ids=99999", 404, "No run 99999."),
        ("ids={a}&ids=99999999999999999999999", 404, "No run 99999999999999999999999."),
        ("ids={a}&ids=x", 400, "ids: &#x27;x&#x27; is not a whole number."),
        ("ids={a}&ids={b}&turn=3", 400, "--turn 3: pick a turn from 1 to 2 (the runs completed turns 2, 2)."),
        ("ids={a}&ids={b}&turn=two", 400, "turn: &#x27;two&#x27; is not a whole number."),
        ("ids={a}&ids={b}&turn=%C2%B2", 400, "turn: &#x27;²&#x27; is not a whole number."),
    ],
)
def test_the_page_says_what_is_wrong(people, stored, query, status, message):
    response = browser(people["owner"]).get(f"{reverse('runs:compare')}?{query.format(a=stored[0].pk, b=stored[1].pk)}")
    assert response.status_code == status
    html = response.content.decode()
    assert f'<p class="form-error" role="alert">{message}</p>' in html
    assert f'href="{reverse("runs:list")}"' in html


def test_the_run_list_has_a_form_to_compare(people, stored):
    html = browser(people["owner"]).get(reverse("runs:list")).content.decode()
    assert f'<form method="get" action="{reverse("runs:compare")}"' in html
    for run in stored:
        assert f'<input type="checkbox" name="ids" value="{run.pk}"' in html


# ---- queries: the page and the API cost the same with 2 runs as with 4 ----------------------------------------
def test_the_page_and_the_api_do_not_query_per_run(people, django_assert_max_num_queries):
    runs = [played(turns=2, seed=seed, owner=people["owner"]) for seed in range(4)]
    client = browser(people["owner"])
    counts: dict[str, list[int]] = {"page": [], "api": []}
    for count in (2, 4):
        query = ids_query(runs[:count], turn=1)
        for name, url in (("page", f"{reverse('runs:compare')}?{query}"), ("api", f"/api/runs/compare?{query}")):
            with django_assert_max_num_queries(9) as captured:  # the session and user, then the selector's 6
                assert client.get(url).status_code == 200
            counts[name].append(len(captured.captured_queries))
    assert counts["page"][0] == counts["page"][1] and counts["api"][0] == counts["api"][1], counts
