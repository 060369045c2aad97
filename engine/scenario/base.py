"""What every model of a scenario folder shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class OpenModel(BaseModel):
    """Unknown keys are kept (and exported again), never fatal."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
