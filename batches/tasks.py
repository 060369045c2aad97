"""Huey tasks: thin entry points that hand a batch's run, or every open batch, to the services."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from batches import services


@db_task(context=False)
def execute_batch_run(run_id: int) -> None:
    # Plays the run like runs.tasks.execute_run, then starts the batch's next runs from this worker.
    services.batch_run_execute(run_id=run_id)


@db_periodic_task(crontab(minute="*"))
def keep_batches_going() -> None:
    # Once a minute: crashed runs resumed, runs ended outside their batch's task followed up.
    services.batches_keep_going()
