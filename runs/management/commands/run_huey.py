"""`manage.py run_huey`: Huey's consumer, stopping gracefully on SIGTERM as well as SIGINT.

A worker told to stop (systemctl stop or restart, a deploy, Ctrl-C) takes no new task, pauses every run it
plays between model calls (the calls in flight answered and booked, none started) and queues each again for
the next worker, then exits: nothing is paid twice and no run is left looking crashed. A call still in flight
after SCENARIOLAB_WORKER_STOP_SECONDS is abandoned (the run is queued all the same); Huey itself waits that long
and a little more for its threads. A second signal stops at once. SIGHUP restarts the same way.
"""

from __future__ import annotations

import logging
import signal

from django.conf import settings
from django.core.checks import Tags
from huey.consumer import Consumer
from huey.contrib.djhuey.management.commands.run_huey import Command as HueyCommand
from huey.storage import RedisPriorityQueue

from runs.execution import executor

logger = logging.getLogger("huey")
STORING_SECONDS = 15  # after the stop bound: the runs' last events and saves, before Huey gives up on its threads


class StoppingConsumer(Consumer):
    """Huey's consumer whose stop signals first hand the runs it plays back to the queue. Both SIGTERM and SIGINT
    are graceful (Huey's own take SIGTERM as "stop now", which left runs running until they looked crashed)."""

    def _set_signal_handlers(self) -> None:
        self._signal_actions = {signal.SIGTERM: (False, True), signal.SIGINT: (False, True), signal.SIGHUP: (True, True)}
        super()._set_signal_handlers()

    def _handle_signal(self, signum, frame) -> None:
        handed = executor.worker_stop(within=settings.WORKER_STOP_SECONDS)
        logger.info("stopping: %d run(s) pause between model calls and go back to the queue", handed)
        super()._handle_signal(signum, frame)
        if signum != signal.SIGHUP:  # a second SIGTERM or SIGINT, whichever came first, stops at once
            for other in (signal.SIGTERM, signal.SIGINT):
                signal.signal(other, signal.default_int_handler)


def adopt_fifo_tasks(huey) -> int:
    """Move the tasks a version before the fair queue left in its Redis list (the queue named SCENARIOLAB_HUEY_NAME)
    into this priority queue, oldest first, so no run queued across an upgrade is stranded. Returns how many."""
    storage = huey.storage
    if not isinstance(storage, RedisPriorityQueue):
        return 0
    old = "huey.redis." + storage.clean_name(settings.HUEY_NAME)
    if old == storage.queue_key or storage.conn.type(old) != b"list":
        return 0
    moved = 0
    while (data := storage.conn.rpop(old)) is not None:  # the list's oldest task is at its right end
        storage.enqueue(data, priority=0)
        moved += 1
    return moved


class Command(HueyCommand):
    help = "Run the Huey worker; SIGTERM or SIGINT hands its runs back to the queue before it exits."
    # The models' checks only: the URL check would load every view, API schema and admin module (and the
    # Markdown renderer they use), none of which a worker serves.
    requires_system_checks = [Tags.models]

    def handle(self, *args, **options):
        from huey.contrib.djhuey import HUEY

        executor.headless()
        if moved := adopt_fifo_tasks(HUEY):
            logger.warning("moved %d task(s) left in the queue of an older version into the fair queue", moved)

        # Huey's own command builds its consumer with `create_consumer`; ours is the same with its signals.
        original = HUEY.create_consumer
        HUEY.create_consumer = lambda **values: StoppingConsumer(
            HUEY, **{**values, "shutdown_timeout": settings.WORKER_STOP_SECONDS + STORING_SECONDS})
        try:
            super().handle(*args, **options)
        finally:
            HUEY.create_consumer = original
