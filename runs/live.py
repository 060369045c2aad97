"""Live run pages: the HTML fragments each event becomes, and the page's first state (the relay that carries
stored events to pages is `runs.execution.relay`).

A page shows a snapshot taken at a seq S (the rows as the last save left them, and the ledger lines of
events up to S), then applies every event after S: first the stored ones (catch-up from `RunEvent`), then
live ones relayed by the channel layer. Fragments carry stable element ids, so an event applied to a page
that already shows its effect replaces rather than repeats it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from django.template.loader import render_to_string

from engine import EventType
from engine.llm.offline import PROVIDER_NAME, played_by
from engine.state import STATUS_AFTER
from engine.phases.metrics import threshold_reached
from engine.scenario.metrics import MetricDefinition
from runs import selectors
from runs import record_selectors
from runs.execution.mapping import decision_of
from runs.metrics import metric_definition_dicts, run_metric_definitions
from runs.models import Run, RunRole, RunStatus
from runs.reading import Reader, readable_event

LIFECYCLE = frozenset(STATUS_AFTER)  # the events that change a run's status


# ---- the page's first state ----------------------------------------------------------------------------------
def cost_by_turn(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    turns: dict[int, dict[str, Any]] = {}
    for line in lines:
        row = turns.setdefault(line["turn"], {"turn": line["turn"], "cost": 0.0, "tokens": 0, "calls": 0})
        for key in ("cost", "tokens", "calls"):
            row[key] += line[key]
    return [turns[n] for n in sorted(turns)]


def negotiations(messages: list) -> list[tuple[Any, list]]:
    """Messages as negotiations: each opening with its replies (both in the order given); a reply whose opening
    is not among them stands as an opening."""
    ids = {m.id for m in messages}
    replies: dict[str, list] = {}
    openings = []
    for message in messages:
        if message.in_reply_to and message.in_reply_to in ids:
            replies.setdefault(message.in_reply_to, []).append(message)
        else:
            openings.append(message)
    return [(opening, replies.get(opening.id, [])) for opening in openings]


def threaded(messages: list) -> list:
    """The messages with each opening followed by its replies, as the page's script places a reply that arrives."""
    return [m for opening, replies in negotiations(messages) for m in (opening, *replies)]


def metric_series(definitions: list[MetricDefinition], names: dict[str, str]) -> list[dict[str, str]]:
    """The columns of the metrics table: each measured metric of the world, or of each actor it measures."""
    series = []
    for metric in definitions:
        if metric.extraction.type == "manual":
            continue
        if not metric.actor_specific:
            series.append({"key": metric.name, "label": metric.name})
            continue
        for short, name in names.items():
            if metric.actor in (None, short, name):
                series.append({"key": f"{metric.name}|{short}", "label": f"{metric.name}: {name}"})
    return series


def metric_alert(metric: MetricDefinition | None, record: dict[str, Any]) -> dict[str, Any] | None:
    """A stored value at or past a threshold, as the page lists it (the same fields as the crossing event)."""
    reached = threshold_reached(metric, record["value"]) if metric is not None else None
    if reached is None:
        return None
    level, limit = reached
    return {"turn": record["turn"], "name": record["name"], "actor": record["actor"] or None, "value": record["value"],
            "level": level, "limit": limit, "direction": metric.thresholds.direction,
            "halts": level == "critical" and metric.thresholds.halt_on_critical}


def run_page_context(*, run: Run, reader: Reader) -> dict[str, Any]:
    """Everything the run page shows on first load, consistent with `after_seq`, as `reader` may know it."""
    records = record_selectors.run_page_records(run)  # refreshes `run` after the newest seq
    viewpoint = reader.viewpoint
    seq = records.snapshot_seq
    names = page_names(run)
    turns: dict[int, dict[str, Any]] = {}

    def turn(n: int) -> dict[str, Any]:
        return turns.setdefault(n, {"number": n, "world": None, "messages": [], "decisions": [], "outside_events": []})

    for t in records.turns:
        turn(t.turn)["world"] = t
        turn(t.turn)["outside_events"] = [{**event, "turn": t.turn} for event in t.exogenous_events]
    # Messages, decisions and findings in the order they were announced, as a page following the run live shows
    # them (the stored order is the engine's, by actor); those no event of this run announced (a branch's turns
    # from its parent) come first, as stored.
    announced = record_selectors.announced_at(run)

    def in_announced_order(records: list, key) -> list:
        return sorted(records, key=lambda record: announced.get(key(record), 0))

    for key, at in announced.items():  # a turn under way shows its section, as it does on a page that saw it start
        if key[0] == "turn" and at <= seq and isinstance(key[1], int) and key[1] > 0:
            turn(key[1])
    for m in threaded(in_announced_order(viewpoint.messages(records.messages), lambda m: ("message", m.id))):
        turn(m.turn)["messages"].append(m)
    for d in in_announced_order(records.decisions, lambda d: ("decision", d.turn, d.actor)):
        turn(d.turn)["decisions"].append(viewpoint.decision(decision_of(d)))
    metrics = records.metrics
    definitions = run_metric_definitions(run=run)
    by_name = {metric.name: metric for metric in definitions}
    series = metric_series(definitions, names)
    table: dict[int, dict[str, Any]] = {}
    for record in metrics:
        key = f"{record['name']}|{record['actor']}" if record["actor"] else record["name"]
        table.setdefault(record["turn"], {})[key] = record["value"]
    costs = selectors.cost_breakdown_at(run, seq)
    pending = selectors.run_pending_seats(run=run)
    parts = selectors.run_roles(run)
    cost_lines = selectors.cost_lines_at(run, seq)
    return {
        "run": run,
        "status": selectors.run_display_status(run),
        "resumable": selectors.run_is_resumable(run),
        "after_seq": seq,
        "status_seq": records.status_seq,
        "initial_world": records.initial_world,
        "turns": [turns[n] for n in sorted(turns)],
        "names": names,
        "models": sorted({a["model"] for a in run.actors} | {run.snapshot["config"].get("world_state_model", "")} - {""}),
        "costs": costs,
        "cost_tables": [("actor", "actor", costs["by_actor"]), ("phase", "phase", costs["by_phase"])],
        "metrics": [{**m, "value": m["value"] if isinstance(m["value"], (int, float)) else None} for m in metrics],
        "metric_definitions": metric_definition_dicts(definitions),
        "metric_series": series,
        "metric_rows": [{"turn": n, "cells": [table[n].get(column["key"]) for column in series]} for n in sorted(table)],
        "metric_alerts": [alert for record in metrics if (alert := metric_alert(by_name.get(record["name"]), record))],
        "cost_lines": cost_lines,
        "cost_by_turn": cost_by_turn(cost_lines),
        "waiting_seats": [_waiting_seat(seat.actor, seat.name, reader) for seat in pending],
        "seat_rows": seat_rows(run, pending, parts),
        "parts": parts,
        "findings": in_announced_order(viewpoint.findings(records.findings), lambda f: ("finding", f.turn, f.check, f.actor)),
        "viewpoint": viewpoint,
        "view_actors": [names.get(actor, actor) for actor in sorted(viewpoint.actors or ())],
        "reader": reader,
        "show_calls": viewpoint.sees_calls,
        "tags": list(run.tags.all()),
        "checks_passed": records.checks_passed,
    }


# Messages already rendered in this process. A stored event never changes and every page of a run gets the same
# message, so twenty pages of a run cost one render and one encoding of each event, not twenty (with 200 sockets,
# rendering per socket kept daphne's loop so busy that page loads took seconds). The key holds the event's type
# and timestamp besides run and seq, so a run id used again (a test database flushed) never gets another's.
RENDERED_KEPT = 1000
_rendered: OrderedDict[tuple, str] = OrderedDict()


def rendered_message(run_id: int, event: dict, *, names: dict[str, str], max_turns: int, reader: Reader) -> str:
    """The JSON text a page receives for a stored event (over its socket, or polling), as `reader` may know it,
    rendered once per process for all the pages of readers who know the same."""
    event = readable_event(reader.viewpoint, event)
    if event.get("timestamp") is None:  # not an event the store or a worker made: nothing to key it by
        return json.dumps(event_fragments(event, run_id=run_id, names=names, max_turns=max_turns, reader=reader))
    # Microseconds: the store keeps them, so a relayed event and its stored copy share a key.
    key = (run_id, event["seq"], max_turns, event["type"], round(float(event["timestamp"]), 6), reader.key)
    text = _rendered.get(key)
    if text is None:
        text = json.dumps(event_fragments(event, run_id=run_id, names=names, max_turns=max_turns, reader=reader))
        _rendered[key] = text
        if len(_rendered) > RENDERED_KEPT:
            _rendered.popitem(last=False)
    return text


def stored_status(run: Run, reader: Reader, user, *, panels: bool = True) -> dict[str, Any]:
    """The run's status as stored now, with the panels that follow it (`status_panels`): sent to pages with every
    re-sync, so a page converges on what a reload would show even if an event never reached the store. A socket
    that sent them for the same status and last event leaves them out (`panels=False`): nothing changed."""
    return {"status": selectors.run_display_status(run), "reason": run.error or run.halt_reason,
            "panels": status_panels(run, reader, user) if panels else []}


def panels_key(run: Run) -> tuple:
    """What the panels follow: the status as shown, and the run's last event (a seat or a part changing hands)."""
    return selectors.run_display_status(run), run.last_seq


# The parts of the run page drawn from the run's stored state rather than from one event: its controls, its
# seats (who decides, who has), its family tree (each member's status) and the QA summary.
PANELS = ("runs/partials/controls.html", "runs/partials/seats.html", "runs/_family_tree.html", "runs/partials/checks.html")
# Forms in a fragment get the page's CSRF token from the page (run-live.js): a fragment is rendered without a
# request, so `{% csrf_field %}` draws none.
NO_REQUEST = {"csrf_token": None}


def status_panels(run: Run, reader: Reader, user) -> list[dict[str, str]]:
    """Each panel of `PANELS` as the run page would draw it now for `reader` (`user`, whose family tree it is)."""
    pending = selectors.run_pending_seats(run=run)
    findings = record_selectors.run_findings(run)
    context = {
        **NO_REQUEST, "run": run, "user": user, "reader": reader, "viewpoint": reader.viewpoint,
        "status": selectors.run_display_status(run), "seat_rows": seat_rows(run, pending, selectors.run_roles(run)),
        "waiting_seats": [_waiting_seat(seat.actor, seat.name, reader) for seat in pending],
        "findings": reader.viewpoint.findings(findings.failed), "checks_passed": findings.passed,
    }
    return [{"html": render_to_string(template, context)} for template in PANELS]


def controls_fragment(run_id: int, turn: int, status: str, reader: Reader) -> dict[str, str]:
    """The controls for the status an event announces, replacing the page's own at once (the stored run may
    not say so yet). A new credit limit is asked for without showing the old one, which the page already has."""
    run = {"pk": run_id, "turn": turn, "credit_limit": None}
    return _fragment("#run-page", "runs/partials/controls.html", {**NO_REQUEST, "run": run, "status": status, "reader": reader})


def page_names(run: Run) -> dict[str, str]:
    return {a["short_name"]: a["name"] for a in run.actors}


def polled_messages(*, run: Run, after: int, reader: Reader, user) -> str:
    """What a page that cannot hold a socket (the channel layer down, a proxy without WebSockets) fetches every
    few seconds: the messages of the stored events after `after`, as the socket sends them, and the status."""
    events = selectors.run_events_after(run_id=run.pk, after=after, limit=POLLED_EVENTS)
    names = page_names(run)
    messages = [rendered_message(run.pk, event, names=names, max_turns=run.max_turns, reader=reader) for event in events]
    return '{"events": [%s], "status": %s}' % (", ".join(messages), json.dumps(stored_status(run, reader, user)))


POLLED_EVENTS = 200


def seat_rows(run: Run, pending_seats: list[selectors.PendingSeat], parts: list[RunRole]) -> list[dict[str, Any]]:
    """The seats table: who plays each actor (`parts`: the run's) and, while the run waits (for
    `pending_seats`), who has decided and who is deciding."""
    players: dict[str, list[str]] = {}
    for part in parts:
        for actor in part.seats:
            players.setdefault(actor, []).append(part.user.get_username() if part.user_id else f"group:{part.group.name}")
    pending = {seat.actor for seat in pending_seats}
    waiting = run.status == RunStatus.WAITING_FOR_HUMAN
    rows = []
    for seat in run.actors:
        human = seat.get("control", "ai") == "human"
        state = ("deciding" if seat["short_name"] in pending else "decided") if waiting and human else ""
        rows.append({**seat, "control": seat.get("control", "ai"), "players": players.get(seat["short_name"], []), "state": state,
                     "model_label": played_by(seat.get("model", ""), PROVIDER_NAME if run.offline else run.provider)})
    return rows


def _waiting_seat(actor: str, name: str, reader: Reader) -> dict[str, Any]:
    return {"actor": actor, "name": name, "mine": reader.decides(actor)}


def _waiting_seats(run: Run, reader: Reader) -> list[dict[str, Any]]:
    return [_waiting_seat(seat.actor, seat.name, reader) for seat in selectors.run_pending_seats(run=run)]


# ---- what an event does to a page -----------------------------------------------------------------------------
def _fragment(target: str, template: str, context: dict[str, Any], mode: str = "upsert") -> dict[str, str]:
    """`upsert`: the fragment's root element replaces the page's element of the same id, or is appended
    to `target`; `ensure`: appended only if no element has its id."""
    return {"target": target, "mode": mode, "html": render_to_string(template, context)}


def event_fragments(event: dict[str, Any], *, run_id: int, names: dict[str, str], max_turns: int, reader: Reader) -> dict[str, Any]:
    """The message a page receives for one stored event: its seq and type, the HTML fragments it adds or
    replaces (rendered here, from the same partials as the page), and the numbers scripts update."""
    kind, data = event["type"], event["data"]
    turn = data.get("turn")
    calls = reader.viewpoint.sees_calls  # "show the call" on what a model made
    out: dict[str, Any] = {"seq": event["seq"], "type": kind, "timestamp": event.get("timestamp"), "fragments": [], "data": {}}
    if kind == EventType.TURN_STARTED:
        out["fragments"].append(_turn_section(turn))
        out["data"] = {"playing": turn, "max_turns": max_turns}
    elif kind == EventType.COMMUNICATION_SENT:
        message = {"id": data["id"], "turn": turn, "kind": data["kind"], "sender": data["sender"],
                   "recipients": data["recipients"], "content": data["content"], "in_reply_to": data["in_reply_to"]}
        out["fragments"] += _turn_then(turn, _fragment(f"#turn-{turn}-messages", "runs/partials/message.html",
                                                       {"message": message, "names": names, "show_calls": calls}))
    elif kind == EventType.ACTOR_DECISION_COMPLETED:
        out["fragments"] += _turn_then(turn, _fragment(f"#turn-{turn}-decisions", "runs/partials/decision.html",
                                                       {"decision": data, "names": names, "show_calls": calls}))
    elif kind == EventType.WORLD_STATE_UPDATED:
        out["fragments"] += _turn_then(turn, _fragment(f"#turn-{turn}-world", "runs/partials/world.html",
                                                       {"world": {"turn": turn, "world_state": data["content"]}, "show_calls": calls}))
    elif kind == EventType.EXOGENOUS_EVENT:
        outside = {"turn": turn, "name": data["name"], "kind": data["kind"], "text": data["text"]}
        out["fragments"] += _turn_then(turn, _fragment(f"#turn-{turn}-outside-events", "runs/partials/outside_event.html",
                                                       {"event": outside}))
    elif kind == EventType.VALIDATION_FAILED:
        out["fragments"].append(_fragment("#findings", "runs/partials/finding.html", {"finding": data, "names": names, "show_calls": calls}))
    elif kind == EventType.TURN_COMPLETED:
        out["data"] = {"completed": turn, "max_turns": max_turns}
    elif kind == EventType.COST_INCURRED:
        out["data"] = {"turn": turn, "actor": data["actor"] or "world", "phase": data["phase"], "cost": data["cost"],
                       "tokens": data["input_tokens"] + data["output_tokens"]}
    elif kind == EventType.METRIC_RECORDED:
        out["data"] = {"turn": turn, "name": data["name"], "actor": data.get("actor"), "value": data["value"],
                       "threshold": data.get("threshold")}
    elif kind == EventType.METRIC_THRESHOLD_CROSSED:
        alert = {key: data.get(key) for key in ("turn", "name", "actor", "value", "level", "limit", "direction", "halts")}
        out["fragments"].append(_fragment("#metric-alerts", "runs/partials/metric_alert.html", {"alert": alert, "names": names}))
    elif kind in LIFECYCLE:
        out["data"] = {"status": STATUS_AFTER[kind].value, "reason": data.get("reason") or data.get("error") or ""}
        # The links to the seats a run waits for (relative: the page is /runs/<id>/), gone once it goes on.
        waiting = [_waiting_seat(a, names.get(a, a), reader) for a in data.get("seats", ())] if kind == EventType.SCENARIO_WAITING else []
        out["fragments"].append(_fragment("#seats-panel", "runs/partials/waiting_seats.html", {"waiting_seats": waiting, "run_url": ""}))
        out["fragments"].append(controls_fragment(run_id, data.get("turn") or 0, out["data"]["status"], reader))
    return out


def _turn_section(turn: int) -> dict[str, str]:
    # "ensure": inserted only where missing, since the section holds what later events add to it.
    return _fragment("#feed", "runs/partials/turn.html", {"turn": {"number": turn}}, "ensure")


def _turn_then(turn: int, fragment: dict[str, str]) -> list[dict[str, str]]:
    """A turn section first (a page that missed turn_started, or never saw it, still gets one)."""
    return [_turn_section(turn), fragment]
