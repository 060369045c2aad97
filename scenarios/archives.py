"""Scenario folders in zip archives: what may be unpacked, unpacking within limits, finding scenario.yaml."""

from __future__ import annotations

import errno
import stat
import zipfile
from pathlib import Path, PurePosixPath

MAX_ZIP_UNPACKED_BYTES = 10 * 1024 * 1024  # a scenario folder is a few hundred KiB of text
MAX_ZIP_ENTRIES = 1000
# Linux refuses a file or folder name over 255 bytes; the path and depth limits keep a whole name well within
# what any filesystem unpacks (PATH_MAX is 4096 with the temporary folder in front), far above real folders.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024
MAX_FOLDER_DEPTH = 32


class ScenarioImportError(ValueError):
    """An upload that is not a usable scenario archive (not a zip, too big, names escaping the folder...)."""


def shown(name: str) -> str:
    """A member's name as a message quotes it: escaped, and only its ends when it is long."""
    return repr(name if len(name) <= 100 else f"{name[:60]}…{name[-30:]}")


def refuse_reason(info: zipfile.ZipInfo) -> str | None:
    """Why an archive member must not be extracted, if it must not."""
    name = info.filename
    parts = PurePosixPath(name).parts
    # zipfile cuts a name at a NUL byte; the archive's own name still holds it.
    if any(ord(character) < 32 or ord(character) == 127 for character in info.orig_filename):
        return f"{shown(info.orig_filename)} has a control character in its name; rename it"
    if "\\" in name:
        return f"{shown(name)} uses '\\' in its path; zip paths use '/'"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"{shown(name)} is an absolute path"
    if ".." in parts:
        return f"{shown(name)} points outside the archive's folder ('..')"
    folder = name.endswith("/")  # not info.is_dir(), which fails on an empty name
    if not parts and not folder:
        return f"{shown(name)} names no file or folder; leave it out"
    if (longest := max((len(part.encode()) for part in parts), default=0)) > MAX_NAME_BYTES:
        return (f"{shown(name)} has a file or folder name of {longest} bytes; "
                f"shorten it to at most {MAX_NAME_BYTES} bytes")
    if len(name.encode()) > MAX_PATH_BYTES:
        return f"{shown(name)} is a path of {len(name.encode())} bytes; keep paths within {MAX_PATH_BYTES} bytes"
    if (depth := len(parts) - (0 if folder else 1)) > MAX_FOLDER_DEPTH:
        return f"{shown(name)} is {depth} folders deep; keep files within {MAX_FOLDER_DEPTH} folders"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"{shown(name)} is a symbolic link"
    if info.flag_bits & 0x1:
        return f"{shown(name)} is encrypted"
    return None


def clash_reason(members: list[zipfile.ZipInfo]) -> str | None:
    """Why the members cannot all be unpacked side by side (one path twice, a file where a folder goes), if so.

    Paths are compared as the filesystem will see them: 'a/', 'a' and 'a/./' are one path."""
    seen: dict[tuple[str, ...], str] = {}
    files: dict[tuple[str, ...], str] = {}
    folders: dict[tuple[str, ...], str] = {}  # a folder's path -> a member that needs it to be a folder
    for info in members:
        parts = PurePosixPath(info.filename).parts
        if not parts:  # the archive's top itself ('./'), which is always a folder
            continue
        if parts in seen:
            also = "" if seen[parts] == info.filename else f" (also as {shown(seen[parts])})"
            return f"{shown(info.filename)} is in the archive twice{also}; keep one of them"
        seen[parts] = info.filename
        folder = info.filename.endswith("/")
        if not folder:
            files[parts] = info.filename
        for depth in range(1, len(parts) + 1 if folder else len(parts)):
            folders.setdefault(parts[:depth], info.filename)
    for parts, name in files.items():
        if parts in folders:
            return (f"{shown(name)} is a file, but {shown(folders[parts])} needs a folder of that name; "
                    "rename one of them")
    return None


def added_by_zip_tools(name: str) -> bool:
    """Files zip tools add on their own (macOS resource forks, Finder metadata)."""
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1] in (".DS_Store", "Thumbs.db"))


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

    Every name is checked before anything is written. Other importers of zips (a V1 run directory) pass their
    own limits, error type and wording."""
    members = [info for info in archive.infolist() if not added_by_zip_tools(info.filename)]
    if len(members) > max_entries:
        raise error(f"{label} holds {len(members)} entries; {holding} has at most {max_entries}")
    for info in members:
        reason = refuse_reason(info)
        if reason:
            raise error(f"{refusal_prefix}refusing the archive: {reason}{refusal_hint}")
    reason = clash_reason(members)
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
        try:
            if not path.resolve().is_relative_to(target.resolve()):  # belt and braces after the name checks
                raise error(f"{refusal_prefix}refusing the archive: {shown(info.filename)} points outside its folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, path.open("wb") as sink:
                # Sizes in the archive's header can lie; count what is actually unpacked.
                while chunk := source.read(64 * 1024):
                    written += len(chunk)
                    if written > max_bytes:
                        raise error(too_big)
                    sink.write(chunk)
        except OSError as exc:  # a name this filesystem refuses that the checks above let through
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # the server's disk, not the upload: not the uploader's to fix
            raise error(f"{refusal_prefix}refusing the archive: {shown(info.filename)} cannot be unpacked here "
                        f"({exc.strerror or type(exc).__name__}); rename it or leave it out{refusal_hint}") from None
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
