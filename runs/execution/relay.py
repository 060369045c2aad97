"""The live relay: events a run has stored, handed to open pages through the channel layer.

Best effort by design: a page that misses a message catches up from the stored events, so a slow or broken
channel layer costs latency, never an event.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from engine import Event

logger = logging.getLogger(__name__)

BATCH = 100  # events in one relayed message at most


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


class LivePublisher:
    """A bus subscriber, after the recorder: hands each stored event to the channel layer.

    Sending happens in a task of its own, in order, so a slow channel layer never slows the run; a send
    that fails costs nothing but latency, because pages catch up from `RunEvent`."""

    def __init__(self, run_id: int, layer=None) -> None:
        self.group = run_group(run_id)
        self.layer = layer if layer is not None else get_channel_layer()
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self.failures = 0

    async def __call__(self, event: Event) -> None:
        if self.layer is None:
            return
        if self._task is None:
            self._task = asyncio.create_task(self._send_in_order())
        self._queue.put_nowait(event)

    async def _send_in_order(self) -> None:
        """One message per batch: what queued up while the last send was in flight goes out together, so a
        burst of events (a phase's calls returning at once) costs the layer one write, not dozens."""
        done = False
        while not done:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < BATCH:
                batch.append(self._queue.get_nowait())
            if batch[-1] is None:
                done = True
                batch.pop()
            if not batch:
                continue
            try:
                await self.layer.group_send(self.group, {"type": "run.events", "events": [e.to_dict() for e in batch]})
            except Exception as exc:  # noqa: BLE001 - the page catches up from the store
                # Said once per run, with the cause: a layer that is down fails every send the same way.
                # One line for the terminal; the traceback only at debug level.
                if not self.failures:
                    logger.warning("could not relay events of %s (%s: %s); pages will fetch them from the store. "
                                   "Embedded profile: has `manage.py migrate` been run since the last upgrade?",
                                   self.group, type(exc).__name__, exc)
                    logger.debug("relay failure", exc_info=True)
                self.failures += 1

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most `timeout` seconds), then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()


def publish_stored(run_id: int, events: list[Event]) -> None:
    """Relay events stored outside a worker (a person's decision, a seat changing hands) to open pages.
    Best effort, like the worker's: a page that misses them catches up from the store."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.events", "events": [e.to_dict() for e in events]})
    except Exception as exc:  # noqa: BLE001 - pages re-sync from the store
        logger.warning("could not relay events of run %s (%s: %s); pages will fetch them from the store",
                       run_id, type(exc).__name__, exc)




def publish_parts_changed(run_id: int) -> None:
    """Tell the run's open sockets that who takes part in it changed: each reads its person's part again (and
    closes if they no longer have one), so a socket never goes on at a view its person lost."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.parts"})
    except Exception as exc:  # noqa: BLE001 - a socket that misses it keeps its view until it reconnects
        logger.warning("could not tell the sockets of run %s that its parts changed (%s: %s)",
                       run_id, type(exc).__name__, exc)
