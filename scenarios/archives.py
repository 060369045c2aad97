"""Scenario folders in zip archives: what may be unpacked, unpacking within limits, finding scenario.yaml."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

MAX_ZIP_UNPACKED_BYTES = 10 * 1024 * 1024  # a scenario folder is a few hundred KiB of text
MAX_ZIP_ENTRIES = 1000


class ScenarioImportError(ValueError):
    """An upload that is not a usable scenario archive (not a zip, too big, names escaping the folder...)."""


def refuse_reason(info: zipfile.ZipInfo) -> str | None:
    """Why an archive member must not be extracted, if it must not."""
    name = info.filename
    parts = PurePosixPath(name).parts
    if "\\" in name:
        return f"{name!r} uses '\\' in its path; zip paths use '/'"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"{name!r} is an absolute path"
    if ".." in parts:
        return f"{name!r} points outside the archive's folder ('..')"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"{name!r} is a symbolic link"
    if info.flag_bits & 0x1:
        return f"{name!r} is encrypted"
    return None


def added_by_zip_tools(name: str) -> bool:
    """Files zip tools add on their own (macOS resource forks, Finder metadata)."""
    parts = PurePosixPath(name).parts
    return parts[0] == "__MACOSX" or parts[-1] in (".DS_Store", "Thumbs.db")


def extract_safely(
    archive: zipfile.ZipFile,
    target: Path,
    *,
    error: type[Exception] = ScenarioImportError,
    label: str = "the archive",
    holding: str = "a scenario",
    max_entries: int = MAX_ZIP_ENTRIES,
    max_bytes: int = MAX_ZIP_UNPACKED_BYTES,
    refusal_prefix: str = "",
    refusal_hint: str = "",
) -> list[str]:
    """Extract the members into `target`, checking every name and counting the bytes really unpacked.
    Other importers of zips (a V1 run directory) pass their own limits, error type and wording."""
    members = [info for info in archive.infolist() if not added_by_zip_tools(info.filename)]
    if len(members) > max_entries:
        raise error(f"{label} holds {len(members)} entries; {holding} has at most {max_entries}")
    for info in members:
        reason = refuse_reason(info)
        if reason:
            raise error(f"{refusal_prefix}refusing the archive: {reason}{refusal_hint}")
    too_big = f"{label} unpacks to more than {max_bytes // (1024 * 1024)} MB, the limit for {holding}"
    if sum(info.file_size for info in members) > max_bytes:
        raise error(too_big)
    written, names = 0, []
    for info in members:
        if info.is_dir():
            continue
        path = target / info.filename
        if not path.resolve().is_relative_to(target.resolve()):  # belt and braces after the name checks
            raise error(f"{refusal_prefix}refusing the archive: {info.filename!r} points outside its folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, path.open("wb") as sink:
            # Sizes in the archive's header can lie; count what is actually unpacked.
            while chunk := source.read(64 * 1024):
                written += len(chunk)
                if written > max_bytes:
                    raise error(too_big)
                sink.write(chunk)
        names.append(info.filename)
    return names


def scenario_root(target: Path, names: list[str]) -> Path:
    """scenario.yaml at the top of the archive, or inside its one top-level folder."""
    top = {PurePosixPath(name).parts[0] for name in names}
    if top & {"scenario.yaml", "scenario.yml"}:
        return target
    folders = {PurePosixPath(name).parts[0] for name in names if len(PurePosixPath(name).parts) > 1}
    if len(folders) == 1 and top == folders:
        return target / folders.pop()
    if not names:
        raise ScenarioImportError("the archive is empty")
    raise ScenarioImportError("expected scenario.yaml at the top of the archive or inside one top-level folder, "
                              f"found: {', '.join(repr(name) for name in sorted(top)[:10])}")
