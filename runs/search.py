"""Full-text search over a run's messages, decisions and worlds, as the reader may know them: each hit says
what it is, where it is on the run page, and the words around the match."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q

from engine.visibility import Viewpoint
from runs.models import Communication, Decision, Run, Turn

MAX_HITS = 200
AROUND = 80  # characters shown on either side of a match


@dataclass(frozen=True)
class Hit:
    kind: str  # message, decision, world
    turn: int
    actor: str  # the sender or decider; "" for a world
    anchor: str  # the element id on the run page
    before: str
    match: str
    after: str


def run_search(*, run: Run, viewpoint: Viewpoint, query: str) -> list[Hit]:
    """Every message, decision (its action, and its reasoning where the reader knows that actor's mind) and world
    of `run` holding `query` (case-insensitive), by turn; at most MAX_HITS."""
    query = query.strip()
    if not query:
        return []
    hits: list[Hit] = []
    for message in Communication.objects.filter(run=run, content__icontains=query).order_by("turn", "position"):
        if viewpoint.sees_message(message.kind, message.sender, message.recipients):
            hits.append(_hit("message", message.turn, message.sender, f"message-{message.message_id}", message.content, query))
    for decision in Decision.objects.filter(run=run).filter(Q(action__icontains=query) | Q(reasoning__icontains=query)):
        text = decision.action if query.lower() in decision.action.lower() else decision.reasoning
        if text is decision.reasoning and not viewpoint.knows_mind_of(decision.actor):
            continue
        hits.append(_hit("decision", decision.turn, decision.actor, f"decision-{decision.turn}-{decision.actor}", text, query))
    for world in Turn.objects.filter(run=run, world_state__icontains=query).exclude(turn=0):
        hits.append(_hit("world", world.turn, "", f"world-{world.turn}", world.world_state, query))
    hits.sort(key=lambda hit: (hit.turn, ("message", "decision", "world").index(hit.kind)))
    return hits[:MAX_HITS]


def _hit(kind: str, turn: int, actor: str, anchor: str, text: str, query: str) -> Hit:
    found = re.search(re.escape(query), text, re.I)
    start, end = (found.start(), found.end()) if found else (0, 0)
    before = text[max(0, start - AROUND):start]
    return Hit(kind, turn, actor, anchor, ("…" if start > AROUND else "") + before, text[start:end],
               text[end:end + AROUND] + ("…" if end + AROUND < len(text) else ""))
