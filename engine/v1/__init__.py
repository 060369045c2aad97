"""The V1 run directory: the files V1's `run_scenario.py` wrote, written from (and read back into) engine state.

V1 users' analysis scripts read these files, so names, Markdown headers and JSON keys follow V1 exactly;
the numbers in them come from the engine's ledger (real token counts, every call counted). Reading accepts
directories written by V1 itself as well as by this project, so old runs can be resumed and imported.
"""

from engine.v1.files import conversation_file_name, v1_costs, v1_metrics
from engine.v1.run_directory import (
    RunDirectoryError,
    RunFilesNotWritten,
    V1RunDirectory,
    branch_run_directory,
    find_scenario_folder,
    next_run_folder,
    read_run,
    read_run_directory,
    read_state_document,
    scenario_folder_name,
)
from engine.v1.state_file import STATE_FILE, V1Status, v1_status
from engine.v1.state_reading import V1Reading, state_from_v1
from engine.v1.state_schema import StateDocument, V1StateError, parse_time

__all__ = [
    "STATE_FILE",
    "RunDirectoryError",
    "RunFilesNotWritten",
    "StateDocument",
    "V1Reading",
    "V1RunDirectory",
    "V1StateError",
    "V1Status",
    "branch_run_directory",
    "conversation_file_name",
    "find_scenario_folder",
    "next_run_folder",
    "parse_time",
    "read_run",
    "read_run_directory",
    "read_state_document",
    "scenario_folder_name",
    "state_from_v1",
    "v1_costs",
    "v1_metrics",
    "v1_status",
]
