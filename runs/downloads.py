"""A run's files as downloads (the Markdown views and state JSON zipped, the state JSON alone): the responses
the run page, the admin and the API give, drawn from the database as the reader may know the run."""

from __future__ import annotations

import io
import json
import zipfile

from django.http import HttpResponse

from engine.state import ScenarioState
from engine.views.markdown import run_views
from engine.visibility import Viewpoint
from runs.execution.store import load_run_state
from runs.models import Run


def _state(run: Run, viewpoint: Viewpoint) -> ScenarioState:
    return viewpoint.state(load_run_state(run))


def _json(state: ScenarioState) -> str:
    return json.dumps(state.to_dict(), indent=2, ensure_ascii=False)


def run_markdown_zip(*, run: Run, viewpoint: Viewpoint) -> bytes:
    """The run's Markdown views and state JSON as a zip (any machine can serve it)."""
    state = _state(run, viewpoint)
    folder = run.file_stem
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for view in run_views(state):
            archive.writestr(f"{folder}/{view.name}", view.render())
        archive.writestr(f"{folder}/state.json", _json(state))
    return buffer.getvalue()


def markdown_zip_response(run: Run, viewpoint: Viewpoint) -> HttpResponse:
    response = HttpResponse(run_markdown_zip(run=run, viewpoint=viewpoint), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{run.file_stem}.zip"'
    return response


def state_json_response(run: Run, viewpoint: Viewpoint) -> HttpResponse:
    response = HttpResponse(_json(_state(run, viewpoint)), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{run.file_stem}-state.json"'
    return response
