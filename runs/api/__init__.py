"""The runs routers of the JSON API, one module per part: records, model calls, comparison, branches, roles, human
seats."""

from runs.api import branches, calls, comparison, records, roles, seats  # noqa: F401 - each registers its routes
from runs.api.common import router, scenario_router

__all__ = ["router", "scenario_router"]
