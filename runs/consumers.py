"""The run socket: one group per run; stored events after the page's seq first, then live ones, never twice.

The consumer sends each event once, in seq order, whatever the channel layer does: it joins the run's
group before reading the store, so nothing falls between the two; a relayed event it already sent is
dropped; a relayed event that skips seqs (the layer dropped some) makes it read the missing ones from
`RunEvent` first. A page reconnecting asks for everything after the last seq it applied.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from runs import selectors
from runs.live import event_fragments, run_group, waiting_seats_fragment
from runs.models import Run, RunEvent

CATCH_UP_BATCH = 200
# Messages already rendered in this process. A stored event never changes and every page of a run gets the same
# message, so twenty pages of a run cost one render and one encoding of each event, not twenty (with 200 sockets,
# rendering per socket kept daphne's loop so busy that page loads took seconds). The key holds the event's type
# and timestamp besides run and seq, so a run id used again (a test database flushed) never gets another's.
RENDERED_KEPT = 1000
_rendered: OrderedDict[tuple, str] = OrderedDict()


def rendered_message(run_id: int, event: dict, *, names: dict[str, str], max_turns: int) -> str:
    """The JSON text a page receives for a stored event, rendered once per process."""
    if event.get("timestamp") is None:  # not an event the store or a worker made: nothing to key it by
        return json.dumps(event_fragments(event, names=names, max_turns=max_turns))
    # Microseconds: the store keeps them, so a relayed event and its stored copy share a key.
    key = (run_id, event["seq"], max_turns, event["type"], round(float(event["timestamp"]), 6))
    text = _rendered.get(key)
    if text is None:
        text = json.dumps(event_fragments(event, names=names, max_turns=max_turns))
        _rendered[key] = text
        if len(_rendered) > RENDERED_KEPT:
            _rendered.popitem(last=False)
    return text


@database_sync_to_async
def _visible_run(run_id: int, user) -> Run | None:
    run = Run.objects.filter(pk=run_id).first()
    return run if run is not None and selectors.run_visible_to(run, user) else None


@database_sync_to_async
def _stored_after(run_id: int, seq: int) -> list[dict]:
    rows = RunEvent.objects.filter(run_id=run_id, seq__gt=seq).order_by("seq")[:CATCH_UP_BATCH]
    return [{"seq": e.seq, "type": e.type, "data": e.data, "timestamp": e.timestamp.timestamp()} for e in rows]


@database_sync_to_async
def _stored_status(run_id: int) -> dict | None:
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return None
    return {"status": selectors.run_display_status(run), "reason": run.error or run.halt_reason,
            "fragments": [waiting_seats_fragment(run)]}


class RunConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["pk"])
        run = await _visible_run(self.run_id, self.scope.get("user"))
        if run is None:
            # The same answer for "no such run" and "not yours". Accepted first: a close before the handshake
            # is an HTTP 403 to the browser, which sees only "abnormal closure" and would retry for ever.
            await self.accept()
            await self.close(code=4403)
            return
        self.names = {a["short_name"]: a["name"] for a in run.actors}
        self.max_turns = run.max_turns
        self.last_seq = _after(self.scope.get("query_string", b""))
        await self.channel_layer.group_add(run_group(self.run_id), self.channel_name)
        await self.accept()
        await self.catch_up()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "last_seq"):
            await self.channel_layer.group_discard(run_group(self.run_id), self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # The page may ask again for everything after a seq (a gap of its own, or a quiet spell). It also
        # gets the run's stored status, so a page converges on it even if an event never made it to the store.
        if isinstance(content, dict) and isinstance(content.get("after"), int) and content["after"] >= 0:
            self.last_seq = min(self.last_seq, content["after"])
            await self.catch_up()
            status = await _stored_status(self.run_id)
            if status is not None:
                await self.send_json({"type": "status", "data": status})

    async def catch_up(self) -> None:
        while events := await _stored_after(self.run_id, self.last_seq):
            for event in events:
                await self.send_event(event)
            if len(events) < CATCH_UP_BATCH:
                return

    async def run_events(self, message: dict) -> None:
        """Relayed events (group_send type "run.events"), in seq order."""
        for event in message["events"]:
            if event["seq"] <= self.last_seq:
                continue
            if event["seq"] > self.last_seq + 1:
                await self.catch_up()  # fills the gap from the store, this event included once it is stored
                if event["seq"] <= self.last_seq:
                    continue
            await self.send_event(event)

    async def send_event(self, event: dict) -> None:
        await self.send(text_data=rendered_message(self.run_id, event, names=self.names, max_turns=self.max_turns))
        self.last_seq = event["seq"]


def _after(query_string: bytes) -> int:
    from urllib.parse import parse_qs

    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0
