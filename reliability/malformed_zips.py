"""Scenario "malformed zips": hostile zip archives through the real API (POST /api/scenarios/import with a
bearer token, through Django's whole request stack) and through the V1 run import service.

Each trial builds a batch seeded by `seed + trial`, one zip of each shape beside a valid scenario folder: a
file or folder name over 255 bytes, a path over 1024 bytes, more than 32 folders deep, a file and a folder of
one name (either order), one name twice, a folder and a file of one name, a control character or a NUL byte in
a name, no name, a symbolic link, an absolute path, '..', '\\', an encrypted member, a bomb and too many
entries. Names, lengths, depths, characters, positions and compression vary with the seed. Every API answer
must be a 400 in the error shape whose message names the entry (the limit, for a bomb or too many entries),
escaped and on one line; every V1 import must raise its own error naming the entry (bombs and entry counts
aside: its limits are 200 MB and 20,000 entries). The scenario the zips are posted over (with update=true),
a stored run and every row must be unchanged after each answer.
"""

from __future__ import annotations

import io
import logging
import random
import stat
import time
import warnings
import zipfile
from typing import NamedTuple

from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.services import api_token_create
from reliability import Result
from runs.models import Run, RunEvent, Turn
from runs.tests.factories import make_run
from runs.v1_import import V1ImportError, run_import_v1_zip
from scenarios.models import Actor, BackgroundDocument, Scenario
from scenarios.services import scenario_import_zip
from scenarios.tests.factories import make_zip, scenario_files

CONTROL_CHARACTERS = [chr(code) for code in range(1, 32)] + ["\x7f"]


class Hostile(NamedTuple):
    shape: str
    members: list[tuple[str, bytes, str]]  # name, content, kind: "file", "link" or "encrypted"
    expect: str  # what the refusal must say: the entry's name, or the limit
    for_v1: bool = True
    patch: tuple[bytes, bytes] | None = None  # bytes to replace in the finished zip (a NUL zipfile cannot write)


def _batch(rng: random.Random) -> list[Hostile]:
    def token() -> str:
        return f"{rng.randrange(16 ** 8):08x}"

    # The token ends each name, where a shortened name in a message still shows it.
    t = [token() for _ in range(16)]
    long_name = "n" * rng.randint(256, 400)
    folder = "p" * rng.randint(150, 250)
    wide = rng.choice(["é", "漢", "🙂"])  # 2, 3 and 4 bytes in UTF-8
    control = rng.choice(CONTROL_CHARACTERS)
    taken = rng.choice(["actors", "background"])  # folders of the valid scenario beside the hostile members
    pattern = rng.choice([b"0", b"\x00", b"harbour "])
    bomb = pattern * (rng.randint(11, 12) * 1024 * 1024 // len(pattern))
    return [
        Hostile("name too long", [(f"harbour/background/{long_name}-{t[0]}.md", b"x", "file")], t[0]),
        Hostile("name too long in UTF-8",
                [(f"harbour/{wide * (256 // len(wide.encode()) + 1)}-{t[1]}.md", b"x", "file")], t[1]),
        Hostile("path too long",
                [("harbour/" + "/".join([folder] * rng.randint(7, 12)) + f"/{t[2]}.md", b"x", "file")], t[2]),
        Hostile("too deep", [("harbour/" + "d/" * rng.randint(33, 200) + f"{t[3]}.md", b"x", "file")], t[3]),
        Hostile("file then folder", [(f"harbour/{t[4]}", b"x", "file"), (f"harbour/{t[4]}/a.md", b"x", "file")],
                f"'harbour/{t[4]}' is a file"),
        Hostile("folder then file", [(f"harbour/{t[5]}/a.md", b"x", "file"), (f"harbour/{t[5]}", b"x", "file")],
                f"'harbour/{t[5]}' is a file"),
        Hostile("file where a folder is", [(f"harbour/{taken}", b"x", "file")], f"'harbour/{taken}' is a file"),
        Hostile("same name twice", [(f"harbour/{t[6]}.md", b"x", "file"), (f"harbour/{t[6]}.md", b"y", "file")],
                f"'harbour/{t[6]}.md' is in the archive twice"),
        Hostile("folder and file of one name", [(f"harbour/{t[7]}/", b"", "file"), (f"harbour/{t[7]}", b"x", "file")],
                f"'harbour/{t[7]}' is in the archive twice"),
        Hostile("control character", [(f"harbour/{t[8]}{control}.md", b"x", "file")],
                repr(f"harbour/{t[8]}{control}.md")),
        Hostile("NUL byte", [(f"harbour/{t[9]}@.md", b"x", "file")], repr(f"harbour/{t[9]}\x00.md"),
                patch=(f"{t[9]}@".encode(), f"{t[9]}\x00".encode())),
        Hostile("no name", [(rng.choice([".", ""]), b"x", "file")], "names no file or folder"),
        Hostile("symbolic link", [(f"harbour/{t[10]}.yaml", b"/etc/passwd", "link")],
                f"'harbour/{t[10]}.yaml' is a symbolic link"),
        Hostile("absolute path", [(rng.choice(["/tmp/", "/", "C:/"]) + f"{t[11]}.yaml", b"x", "file")],
                f"{t[11]}.yaml' is an absolute path"),
        Hostile("'..'", [(f"harbour/{'../' * rng.randint(1, 4)}{t[12]}.yaml", b"x", "file")],
                f"{t[12]}.yaml' points outside"),
        Hostile("backslash", [(f"harbour\\..\\{t[13]}.yaml", b"x", "file")], f"{t[13]}.yaml' uses"),
        Hostile("encrypted", [(f"harbour/background/{t[14]}.md", b"x", "encrypted")],
                f"'harbour/background/{t[14]}.md' is encrypted"),
        Hostile("bomb", [(f"harbour/background/{t[15]}.md", bomb, "file")], "unpacks to more than 10 MB",
                for_v1=False),
        Hostile("too many entries",
                [(f"harbour/background/{i}.md", b"x", "file") for i in range(rng.randint(1000, 1200))],
                "entries; a scenario has at most 1000", for_v1=False),
    ]


def _zip(hostile: Hostile, rng: random.Random) -> bytes:
    """The valid folder under harbour/ with the hostile members at a random place among its files."""
    valid = [(f"harbour/{relative}", content if isinstance(content, bytes) else content.encode(), "file")
             for relative, content in scenario_files().items()]
    at = rng.randrange(len(valid) + 1)
    compression = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of a name written twice, one of the shapes
        for name, content, kind in valid[:at] + hostile.members + valid[at:]:
            info = zipfile.ZipInfo(name)
            # A bomb is small packed: stored, it would be refused as an upload over 10 MB before being opened.
            info.compress_type = zipfile.ZIP_DEFLATED if len(content) > 1024 * 1024 else compression
            if kind == "link":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, content)
            if kind == "encrypted":  # writestr clears the flag; the central directory, written at close, keeps it
                info.flag_bits |= 0x1
    data = buffer.getvalue()
    return data.replace(*hostile.patch) if hostile.patch else data


def _stored() -> list[list[tuple]]:
    return [list(model.objects.order_by("pk").values_list())
            for model in (Scenario, Actor, BackgroundDocument, Run, Turn, RunEvent)]


def _api_problem(client: Client, data: bytes, hostile: Hostile, slug: str) -> str:
    upload = SimpleUploadedFile(f"{hostile.shape}.zip", data, content_type="application/zip")
    response = client.post("/api/scenarios/import", {"upload": upload, "slug": slug, "update": "true"})
    if response.status_code != 400:
        return f"answered {response.status_code}: {response.content[:200]!r}"
    body = response.json()
    if set(body) != {"code", "message", "fields"} or body["code"] != "bad_request" \
            or body["fields"] != [{"loc": ["upload"], "message": body["message"]}]:
        return f"400 not in the error shape: {str(body)[:200]}"
    return _message_problem(body["message"], hostile)


def _v1_problem(data: bytes, hostile: Hostile, owner: User) -> str:
    try:
        run = run_import_v1_zip(upload=data, owner=owner)
    except V1ImportError as exc:
        return _message_problem(str(exc), hostile)
    except Exception as exc:  # noqa: BLE001 - any other exception is what this scenario looks for
        return f"raised {type(exc).__name__}: {str(exc)[:200]}"
    return f"imported as run {run.pk}"


def _message_problem(message: str, hostile: Hostile) -> str:
    if hostile.expect not in message:
        return f"the refusal does not say {hostile.expect[:80]!r}: {message[:300]!r}"
    if not message.isprintable() or len(message) > 500:
        return f"the refusal is not one short printable line: {message[:300]!r}"
    return ""


def _trial(rng: random.Random, tag: str, counts: dict[str, int]) -> list[str]:
    person = User.objects.create_user(f"zips{tag}", password="pw")
    person.user_permissions.add(*Permission.objects.filter(content_type__app_label="scenarios",
                                                           codename__in=["add_scenario", "change_scenario"]))
    _, raw = api_token_create(owner=person, name="malformed zips")
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {raw}")
    slug = f"harbour{tag}"
    scenario_import_zip(upload=make_zip(scenario_files()), slug=slug)  # posted over by every zip, with update
    make_run(owner=person)
    problems = []
    batch = _batch(rng)
    counts["shapes"] = len(batch)
    for hostile in batch:
        data = _zip(hostile, rng)
        before = _stored()
        found = {"API": _api_problem(client, data, hostile, slug)}
        counts["api"] += 1
        if hostile.for_v1:
            found["V1"] = _v1_problem(data, hostile, person)
            counts["v1"] += 1
        if _stored() != before:
            found["database"] = "stored rows changed"
        problems += [f"{hostile.shape}: {where}: {problem}" for where, problem in found.items() if problem]
    return problems


def run(trials: int, *, seed: int = 0) -> Result:
    passed, failures, counts = 0, [], {"api": 0, "v1": 0, "shapes": 0}
    started = time.monotonic()
    requests = logging.getLogger("django.request")
    level = requests.level
    requests.setLevel(logging.ERROR)  # a warning for each 400 this scenario asks for; a 500 is still logged
    try:
        for trial in range(trials):
            try:
                problems = _trial(random.Random(seed + trial), f"-{seed}-{trial}", counts)
            except Exception as exc:  # noqa: BLE001 - a crash is what this scenario looks for
                problems = [f"crashed: {type(exc).__name__}: {exc}"]
            if problems:
                failures.append(f"trial {trial + 1}: " + "; ".join(problems[:5]))
            else:
                passed += 1
    finally:
        requests.setLevel(level)
    figure = (f"{counts['api']} zips of {counts['shapes']} shapes through POST /api/scenarios/import, "
              f"{counts['v1']} through the V1 run import; every answer a 400 (or the V1 error) naming the entry, "
              "nothing stored changed; "
              f"{(time.monotonic() - started) / max(trials, 1):.2f} s a trial")
    if failures:
        figure += "; FAILED " + " | ".join(failures)
    return Result("malformed zips", trials, passed, figure)
