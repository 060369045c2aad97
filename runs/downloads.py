"""A run's files as a download: the one response the run page, the admin and the API give."""

from __future__ import annotations

from django.http import HttpResponse

from runs import services
from runs.models import Run


def markdown_zip_response(run: Run) -> HttpResponse:
    """The run's Markdown views and state JSON, zipped (`services.run_markdown_zip`), named after the run."""
    response = HttpResponse(services.run_markdown_zip(run=run), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{run.file_stem}.zip"'
    return response
