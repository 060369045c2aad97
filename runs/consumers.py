"""The run sockets: one group per run; stored events after the client's seq first, then live ones, never twice.
`RunConsumer` sends a page each event as the HTML fragments it shows; `RunStreamConsumer` sends a script each
stored event as JSON.

The consumer sends each event once, in seq order, whatever the channel layer does: it joins the run's
group before reading the store, so nothing falls between the two; a relayed event it already sent is
dropped; a relayed event that skips seqs (the layer dropped some) makes it read the missing ones from
`RunEvent` first. A page reconnecting asks for everything after the last seq it applied.
"""

from __future__ import annotations

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from runs import selectors
from runs.execution.relay import run_group
from runs.live import page_names, panels_key, rendered_message, stored_status
from runs.models import Run
from runs.notifications import people_group, seats_waiting_for
from runs.reading import Reader, readable_event, reader_of

logger = logging.getLogger(__name__)

CATCH_UP_BATCH = 200
LIVE_UNAVAILABLE = 4503  # the close code that tells a page to follow the run by polling instead


@database_sync_to_async
def _visible_run(run_id: int, user) -> tuple[Run, Reader] | None:
    """The run and how `user` reads it, if they may see it."""
    run = selectors.run_get(run_id=run_id)
    if run is None or not user.has_perm("runs.see_run", run):
        return None
    return run, reader_of(run, user)


@database_sync_to_async
def _stored_after(run_id: int, seq: int) -> list[dict]:
    return selectors.run_events_after(run_id=run_id, after=seq, limit=CATCH_UP_BATCH)


@database_sync_to_async
def _stored_status(run_id: int, reader: Reader, user, shown: tuple | None) -> tuple[dict, tuple] | None:
    """The stored status, and what its panels follow; the panels only when that changed since `shown`."""
    run = selectors.run_get(run_id=run_id)
    if run is None:
        return None
    key = panels_key(run)
    return stored_status(run, reader, user, panels=key != shown), key


class RunConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["pk"])
        visible = await _visible_run(self.run_id, self.scope.get("user"))
        if visible is None:
            # The same answer for "no such run" and "not yours". Accepted first: a close before the handshake
            # is an HTTP 403 to the browser, which sees only "abnormal closure" and would retry for ever.
            await self.accept()
            await self.close(code=4403)
            return
        run, self.reader = visible
        self.names = page_names(run)
        self.max_turns = run.max_turns
        self.last_seq = _after(self.scope.get("query_string", b""))
        try:
            await self.channel_layer.group_add(run_group(self.run_id), self.channel_name)
        except Exception as exc:  # noqa: BLE001 - the layer is down or unprepared: the page polls instead
            logger.warning("run %s: live updates unavailable, the channel layer refused the socket (%s: %s); "
                           "pages follow runs by polling. Embedded profile: has `manage.py migrate` been run?",
                           self.run_id, type(exc).__name__, exc)
            await self.accept()
            await self.close(code=LIVE_UNAVAILABLE)
            return
        self.joined = True
        await self.accept()
        await self.catch_up()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(run_group(self.run_id), self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # The page may ask again for everything after a seq (a gap of its own, or a quiet spell). It also
        # gets the run's stored status, so a page converges on it even if an event never made it to the store.
        if isinstance(content, dict) and isinstance(content.get("after"), int) and content["after"] >= 0:
            self.last_seq = min(self.last_seq, content["after"])
            await self.catch_up()
            stored = await _stored_status(self.run_id, self.reader, self.scope.get("user"), getattr(self, "panels_shown", None))
            if stored is not None:
                status, self.panels_shown = stored
                await self.send_json({"type": "status", "data": status})

    async def catch_up(self) -> None:
        while events := await _stored_after(self.run_id, self.last_seq):
            for event in events:
                await self.send_event(event)
            if len(events) < CATCH_UP_BATCH:
                return

    async def run_parts(self, message: dict) -> None:
        """Who takes part in the run changed: read this person's part again (and draw the panels again for it);
        without one, the socket closes."""
        visible = await _visible_run(self.run_id, self.scope.get("user"))
        if visible is None:
            await self.close(code=4403)
            return
        _, self.reader = visible
        self.panels_shown = None

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
        await self.send(text_data=rendered_message(self.run_id, event, names=self.names, max_turns=self.max_turns,
                                                   reader=self.reader))
        self.last_seq = event["seq"]


def _after(query_string: bytes) -> int:
    from urllib.parse import parse_qs

    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0


class RunStreamConsumer(RunConsumer):
    """`ws /api/runs/<id>/stream?after=SEQ` for scripts: each message one stored event as JSON (`seq`, `type`,
    `timestamp`, `data` in full), in seq order, none twice, none missing across reconnects (reconnect with the
    last seq received as `after`). The same visibility as the run's page (an event outside the caller's view
    comes as `hidden`, with its seq only); a bearer token or the session."""

    async def receive_json(self, content, **kwargs) -> None:
        # A script may ask again for everything after a seq; the answer is events only, never a status message.
        if isinstance(content, dict) and isinstance(content.get("after"), int) and content["after"] >= 0:
            self.last_seq = min(self.last_seq, content["after"])
            await self.catch_up()

    async def send_event(self, event: dict) -> None:
        event = readable_event(self.reader.viewpoint, event)
        await self.send_json({"seq": event["seq"], "type": event["type"], "timestamp": event["timestamp"],
                              "data": event["data"]})
        self.last_seq = event["seq"]


@database_sync_to_async
def _seats_of(user) -> list[dict]:
    return [{"run": seat.run.pk, "actor": seat.actor, "name": seat.name, "turn": seat.turn, "page": seat.path,
             "title": f"{seat.run.scenario_name} run {seat.run.number:03d}"} for seat in seats_waiting_for(user)]


class SeatsConsumer(AsyncJsonWebsocketConsumer):
    """`ws /ws/seats/`: the seats waiting for the signed-in person, sent on connect and whenever they change
    (`runs.notifications`): what every page's header shows, and the notice of a seat that starts waiting."""

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.accept()
            await self.close(code=4403)
            return
        self.group = people_group(self.user.pk)
        try:
            await self.channel_layer.group_add(self.group, self.channel_name)
        except Exception as exc:  # noqa: BLE001 - the layer is down: the header shows the plain link
            logger.warning("seats socket: the channel layer refused it (%s: %s)", type(exc).__name__, exc)
            await self.accept()
            await self.close(code=LIVE_UNAVAILABLE)
            return
        self.joined = True
        await self.accept()
        await self.send_seats()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        await self.send_seats()  # a page may ask again (after a quiet spell)

    async def seats_changed(self, message: dict) -> None:
        await self.send_seats()

    async def send_seats(self) -> None:
        await self.send_json({"type": "seats", "seats": await _seats_of(self.user)})
