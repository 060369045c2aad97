"""Huey tasks: thin entry points that hand a run to the services."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from runs import notifications, seats, services
from runs.execution import executor


@db_task(context=False)
def execute_run(run_id: int) -> None:
    # A second worker handed the same run finds it already claimed and does nothing.
    executor.run_execute(run_id=run_id)


@db_periodic_task(crontab(minute="*"))
def hand_over_expired_seats() -> None:
    # Once a minute: a seat's timeout is honoured to within a minute, with no task per waiting run.
    seats.seats_hand_over_expired()


@db_task(context=False)
def announce_waiting_seats(run_id: int) -> None:
    # On a worker of its own: a slow mail server delays the notice, never the run that started waiting.
    notifications.notify_wait_started(run_id)


@db_periodic_task(crontab(hour="3", minute="17"))
def prune_call_traces() -> None:
    # Daily: call traces hold every prompt and answer, the largest rows a run has (SCENARIOLAB_CALL_TRACE_DAYS).
    services.calls_prune()
