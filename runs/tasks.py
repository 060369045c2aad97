"""Huey tasks: thin entry points that hand a run to the services."""

from huey.contrib.djhuey import db_task

from runs import services


@db_task(context=False)
def execute_run(run_id: int) -> None:
    # A second worker handed the same run finds it already claimed and does nothing.
    services.run_execute(run_id=run_id)
