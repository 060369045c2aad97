"""The load scenario's viewers: each a websocket client of a run page, joining, dropping and reconnecting as a
page does, all in an event loop of their own thread, recording what they received and how fast."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

PASSWORD = "load-viewer-password-1"
AFTER = re.compile(r'data-after="(\d+)"')
VIEWER_SECONDS = 60  # the longest a viewer waits for its socket or its re-sync answer
HANDSHAKE_TRIES = 5  # the page tries for ever, 0.5 s, 1 s, 2 s… apart
QUIET_SECONDS = 0.5  # once every run has ended, a viewer re-syncs after this long without a message

@dataclass
class Viewer:
    run_id: int
    join_at_seq: int  # 0: there before the run starts; else joins once the run has reached this seq
    drop_at_seq: int = 0  # drops its socket once it has this seq, and reconnects after its last, as the page does
    reconnected: bool = False
    refused: int = 0  # handshakes that failed and were tried again
    delays: list[float] = field(default_factory=list)  # an early viewer's: from each event's emission to its arrival
    page_seconds: list[float] = field(default_factory=list)  # each page load's time
    socket_seconds: list[float] = field(default_factory=list)  # each socket's opening handshake's time
    after: int = -1  # the page's data-after
    seqs: list[int] = field(default_factory=list)  # every event message's seq, as received
    resynced_at: int = -1  # len(seqs) when the viewer asked for everything after its last seq
    error: str = ""

    def mismatch(self, stored: list[int]) -> str:
        """"" when this viewer received exactly the stored seqs after its page's, in order. The answer to its
        re-sync may repeat events that were on the way when it asked; the page drops those, and so does this."""
        if self.error:
            return f"a viewer failed: {self.error}"
        expected = [s for s in stored if s > self.after]
        cut = self.resynced_at if self.resynced_at >= 0 else len(self.seqs)
        live, applied = self.seqs[:cut], self.seqs[:cut]
        for seq in self.seqs[cut:]:
            if seq > (applied[-1] if applied else self.after):
                applied.append(seq)
        if live == expected[: len(live)] and applied == expected:
            return ""
        what = []
        if len(set(live)) != len(live):
            what.append(f"{len(live) - len(set(live))} duplicates")
        if any(b < a for a, b in zip(live, live[1:])):
            what.append("reordered")
        if missing := sorted(set(expected) - set(applied)):
            what.append(f"{len(missing)} missing (first {missing[0]})")
        if extra := sorted(set(self.seqs) - set(expected)):
            what.append(f"{len(extra)} not stored or before its page (first {extra[0]})")
        return (f"a viewer from seq {self.after} got {len(live)} events live and {len(self.seqs) - len(live)} in its "
                f"re-sync, expected {len(expected)}: {', '.join(what) or 'another order'}")


class Socket:
    """A minimal WebSocket client (RFC 6455) on asyncio streams: this process has no asyncio one at hand
    (Django's daphne app sets txaio, and so autobahn, to Twisted). Text messages only, as the run socket sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.closed_with: int | None = None
        self.error = ""
        self.messages: asyncio.Queue[dict | None] = asyncio.Queue()  # what arrived, None once closed
        self._pump = asyncio.ensure_future(self._read_all())

    @classmethod
    async def open(cls, url: str, *, origin: str, cookie: str) -> Socket:
        where = urlsplit(url)
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {where.path}?{where.query} HTTP/1.1\r\nHost: {where.netloc}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Origin: {origin}\r\nCookie: {cookie}\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(f"no websocket: {head.splitlines()[0].decode(errors='replace')}")
        return cls(reader, writer)

    async def _read_all(self) -> None:
        try:
            while (message := await self.receive()) is not None:
                self.messages.put_nowait(message)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.closed_with = self.closed_with or 1006
            self.error = repr(exc)
        self.messages.put_nowait(None)

    async def receive(self) -> dict | None:
        """The next message, decoded; None once the server closed."""
        parts: list[bytes] = []
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size >= 126:
                size = int.from_bytes(await self.reader.readexactly(2 if size == 126 else 8), "big")
            payload = await self.reader.readexactly(size)  # a server never masks
            opcode = first & 0x0F
            if opcode == 0x8:
                self.closed_with = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                return None
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if first & 0x80:
                    return json.loads(b"".join(parts))

    def send(self, message: dict) -> None:
        self._frame(0x1, json.dumps(message).encode())

    async def close(self) -> None:
        self._pump.cancel()
        if self.closed_with is None:
            self._frame(0x8, (1000).to_bytes(2, "big"))
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass

    def _frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)  # a client always masks
        size = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big"))
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


class Watch:
    """Every viewer, in an event loop of its own thread (the test's thread keeps the ORM to itself)."""

    def __init__(self, base: str, username: str, viewers: list[Viewer]) -> None:
        self.base, self.username, self.viewers = base, username, viewers
        self._ready = threading.Event()  # the early viewers are connected
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finish: asyncio.Event | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(VIEWER_SECONDS) or self._failure:
            raise AssertionError(f"the viewers could not connect: {self._failure!r}")

    def finish(self) -> list[Viewer]:
        """Every run has ended: each viewer re-syncs, then closes."""
        self._loop.call_soon_threadsafe(self._finish.set)
        self._thread.join(VIEWER_SECONDS + 30)
        if self._thread.is_alive() or self._failure:
            raise AssertionError(f"the viewers did not finish: {self._failure!r}")
        return self.viewers

    async def _main(self) -> None:
        self._loop, self._finish = asyncio.get_running_loop(), asyncio.Event()
        self.progress: dict[int, int] = {}
        try:
            limits = httpx.Limits(max_connections=20)
            async with httpx.AsyncClient(base_url=self.base, timeout=VIEWER_SECONDS, limits=limits) as http:
                await self._sign_in(http)
                early = [v for v in self.viewers if not v.join_at_seq]
                opened = await asyncio.gather(*(self._open(http, v) for v in early))
                self._ready.set()
                await asyncio.gather(*(self._follow(http, v, socket) for v, socket in zip(early, opened)),
                                     *(self._join_late(http, v) for v in self.viewers if v.join_at_seq))
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise

    async def _sign_in(self, http: httpx.AsyncClient) -> None:
        page = await http.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        done = await http.post("/accounts/login/", data={"username": self.username, "password": PASSWORD,
                                                         "csrfmiddlewaretoken": token},
                               headers={"Referer": f"{self.base}/accounts/login/"})
        if "sessionid" not in http.cookies:
            raise AssertionError(f"signing in failed: HTTP {done.status_code}")

    async def _open(self, http: httpx.AsyncClient, viewer: Viewer) -> Socket | None:
        """Load the page as a browser does, then open its socket after the page's seq."""
        try:
            started = time.monotonic()
            page = await http.get(f"/runs/{viewer.run_id}/")
            viewer.page_seconds.append(time.monotonic() - started)
            viewer.after = int(AFTER.search(page.text).group(1))
        except Exception as exc:  # noqa: BLE001 - a viewer that cannot follow is a finding, not a crash
            viewer.error = f"could not load its page: {exc!r}"
            return None
        return await self._connect(http, viewer, viewer.after)

    async def _connect(self, http: httpx.AsyncClient, viewer: Viewer, after: int) -> Socket | None:
        """Open the run's socket after `after`; a refused or broken handshake is tried again after 0.5, 1, 2…
        seconds, as the page's onclose does (daphne drops a handshake the app has not accepted in 5 s)."""
        url = f"{self.base.replace('http', 'ws', 1)}/ws/runs/{viewer.run_id}/?after={after}"
        for attempt in range(HANDSHAKE_TRIES):
            try:
                started = time.monotonic()
                socket = await asyncio.wait_for(
                    Socket.open(url, origin=self.base, cookie=f"sessionid={http.cookies['sessionid']}"), VIEWER_SECONDS)
                viewer.socket_seconds.append(time.monotonic() - started)
                return socket
            except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
                viewer.refused += 1
                problem = repr(exc)
                await asyncio.sleep(0.5 * 2**attempt)
        viewer.error = f"could not open its socket in {HANDSHAKE_TRIES} tries: {problem}"
        return None

    async def _join_late(self, http: httpx.AsyncClient, viewer: Viewer) -> None:
        while self.progress.get(viewer.run_id, 0) < viewer.join_at_seq and not self._finish.is_set():
            await asyncio.sleep(0.02)
        await self._follow(http, viewer, await self._open(http, viewer))

    async def _follow(self, http: httpx.AsyncClient, viewer: Viewer, socket: Socket | None) -> None:
        if socket is None:
            return
        try:
            while (taken := await self._take(viewer, socket)) == "dropped":
                # The page's onclose: a new socket after the last seq it applied (no page load).
                await socket.close()
                viewer.reconnected = True
                if (socket := await self._connect(http, viewer, viewer.seqs[-1])) is None:
                    return
            if taken == "closed":
                return
            # Every run has ended: the page's quiet re-sync, answered by what is missing, then the status.
            last = viewer.seqs[-1] if viewer.seqs else viewer.after
            viewer.resynced_at = len(viewer.seqs)
            socket.send({"after": last})
            await asyncio.wait_for(self._take(viewer, socket, until_status=True), VIEWER_SECONDS)
        except TimeoutError:
            viewer.error = "no answer to the re-sync"
        finally:
            if socket is not None:
                await socket.close()

    async def _take(self, viewer: Viewer, socket: Socket, *, until_status: bool = False) -> str:
        """Record events until every run has ended and the socket is quiet: "quiet" (or, re-syncing, until the
        status message comes: "status"); "dropped" when the viewer drops its connection, "closed" if the server did."""
        finishing = asyncio.ensure_future(self._finish.wait())
        try:
            while True:
                if until_status:
                    message = await socket.messages.get()
                elif finishing.done():
                    try:
                        message = await asyncio.wait_for(socket.messages.get(), QUIET_SECONDS)
                    except TimeoutError:
                        return "quiet"  # the page would re-sync now
                else:
                    getting = asyncio.ensure_future(socket.messages.get())
                    await asyncio.wait({getting, finishing}, return_when=asyncio.FIRST_COMPLETED)
                    if not getting.done():
                        getting.cancel()
                        continue
                    message = getting.result()
                if message is None:
                    viewer.error = f"the socket closed ({socket.closed_with} {socket.error})"
                    return "closed"
                if message.get("type") == "status":
                    if until_status:
                        return "status"
                    continue
                viewer.seqs.append(message["seq"])
                if not viewer.join_at_seq and not until_status and message.get("timestamp"):
                    viewer.delays.append(time.time() - message["timestamp"])  # the worker's clock is this one
                self.progress[viewer.run_id] = max(self.progress.get(viewer.run_id, 0), message["seq"])
                if not until_status and viewer.drop_at_seq and not viewer.reconnected and message["seq"] >= viewer.drop_at_seq:
                    return "dropped"
        finally:
            finishing.cancel()
