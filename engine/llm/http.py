"""A small HTTP/1.1 client for one model server: pooled keep-alive connections over asyncio streams, h11 for
the protocol.

A provider posts JSON to one server and reads JSON back; that is all this does. It replaces a general client
whose import (with its own CLI's dependencies) cost about 10 MB and a millisecond of pool bookkeeping a call.
New connections ramp up: at most `max_connecting` are being opened at once (a round of 25 calls must not
send 25 SYNs at a server whose listen backlog is 5, which drops the rest and stalls them a second), and a
call waiting to connect takes any connection freed meanwhile. TLS (https) uses the system's certificates, or
certifi's when installed, through the proxy HTTPS_PROXY names (CONNECT) unless NO_PROXY exempts the server;
plain http (a model server on this machine or the local network) is never proxied.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h11


def https_proxy(host: str) -> tuple[str, int] | None:
    """The proxy HTTPS requests to `host` go through (HTTPS_PROXY / https_proxy, minus NO_PROXY), if any."""
    import urllib.request  # read the environment as the standard library does, only for https servers

    url = urllib.request.getproxies().get("https")
    if not url or urllib.request.proxy_bypass(host):
        return None
    proxy = urlsplit(url if "://" in url else f"http://{url}")
    return (proxy.hostname or "", proxy.port or 80) if proxy.hostname else None


class TransportError(Exception):
    """The request could not be sent or its answer not read: connect errors, timeouts, dropped connections."""


class ConnectError(TransportError):
    pass


class ConnectTimeout(TransportError):
    pass


class ReadTimeout(TransportError):
    pass


class RemoteProtocolError(TransportError):
    """The server closed the connection or answered something that is not HTTP/1.1."""


@dataclass(frozen=True)
class HttpReply:
    status_code: int
    headers: Mapping[str, str] = field(repr=False)  # lower-case names
    content: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)


# An idle connection older than this is not used again: servers and proxies close idle ones after a few
# seconds, and a request sent on one they are closing would be lost with it.
KEEPALIVE_SECONDS = 5.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.answered = False  # some of this request's answer came back: the server took the request
        self.idle_since = 0.0

    @property
    def reusable(self) -> bool:
        return self.h11.our_state is h11.IDLE and self.h11.their_state is h11.IDLE and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class HttpPool:
    """Keep-alive connections to the server at `base_url`; `post_json` sends one request on one of them."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str] | None = None, connect_timeout: float = 10.0,
                 read_timeout: float = 120.0, max_connecting: int = 4) -> None:
        url = urlsplit(base_url.rstrip("/"))
        self.scheme, self.host = url.scheme, url.hostname or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.path = url.path
        self.authority = url.netloc.rsplit("@", 1)[-1]
        self.headers = [("Host", self.authority), ("Accept", "application/json"), ("Connection", "keep-alive"),
                        ("User-Agent", "scenario-lab"), *(headers or {}).items()]
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._idle: list[_Connection] = []
        self._connecting = asyncio.Semaphore(max_connecting)
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def post_json(self, path: str, body: Any) -> HttpReply:
        payload = json.dumps(body, ensure_ascii=False).encode()
        connection, reused = await self._checkout()
        try:
            reply = await self._exchange(connection, path, payload)
        except RemoteProtocolError:
            connection.close()
            if not reused or connection.answered:
                raise
            # A kept-alive connection the server had already closed, before any byte of an answer: the request
            # never reached it, so it is sent once more on a new connection (nothing was billed). Once an answer
            # has begun, the server has the request: what to do is the caller's retry policy, not this pool's.
            connection, _ = await self._checkout(fresh=True)
            try:
                reply = await self._exchange(connection, path, payload)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()  # a timeout or a cancellation leaves the connection in an unknown state
            raise
        if connection.reusable and not self._closed:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return reply

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _checkout(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        if not fresh and (connection := self._take_idle()):
            return connection, True
        async with self._connecting:
            if not fresh and (connection := self._take_idle()):  # freed while this call waited to connect
                return connection, True
            return await self._connect(), False

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable and time.monotonic() - connection.idle_since < KEEPALIVE_SECONDS:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        context = self._tls() if self.scheme == "https" else None
        proxy = https_proxy(self.host) if context else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if proxy is None:
                    reader, writer = await asyncio.open_connection(
                        self.host, self.port, ssl=context, server_hostname=self.host if context else None, limit=2**20)
                else:
                    reader, writer = await asyncio.open_connection(*proxy, limit=2**20)
                    try:
                        await self._tunnel(reader, writer, proxy)
                        await writer.start_tls(context, server_hostname=self.host)
                    except BaseException:
                        writer.close()  # a refused tunnel, a failed handshake, a timeout: nothing left open
                        raise
        except TimeoutError as exc:
            raise ConnectTimeout(f"no connection to {self.authority} within {self.connect_timeout:g} s") from exc
        except OSError as exc:  # refused, unreachable, TLS failures (ssl.SSLError is an OSError)
            via = f" through the proxy {proxy[0]}:{proxy[1]}" if proxy else ""
            raise ConnectError(f"cannot connect to {self.authority}{via}: {exc}") from exc
        return _Connection(reader, writer)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proxy: tuple[str, int]) -> None:
        """Ask an HTTP proxy (HTTPS_PROXY) for a tunnel to the server: CONNECT, then TLS inside it."""
        target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise ConnectionError("the proxy closed the connection") from exc
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if status.split(" ")[1:2] != ["200"]:
            writer.close()
            raise ConnectionError(f"the proxy answered {status!r} to CONNECT {target}")

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            try:
                import certifi
            except ImportError:
                self._ssl = ssl.create_default_context()
            else:
                self._ssl = ssl.create_default_context(cafile=certifi.where())
        return self._ssl

    async def _exchange(self, connection: _Connection, path: str, payload: bytes) -> HttpReply:
        try:
            head = connection.h11.send(h11.Request(method="POST", target=f"{self.path}{path}", headers=[
                *self.headers, ("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]))
        except h11.LocalProtocolError as exc:  # a header this client cannot send (a key holding a line break)
            raise ValueError(f"cannot send the request to {self.authority}: {exc}") from exc
        try:
            async with asyncio.timeout(self.read_timeout):  # sending a large request counts too
                connection.writer.write(head + connection.h11.send(h11.Data(data=payload))
                                        + connection.h11.send(h11.EndOfMessage()))
                await connection.writer.drain()
                return await self._read(connection)
        except TimeoutError as exc:
            raise ReadTimeout(f"no answer from {self.authority} within {self.read_timeout:g} s") from exc
        except (OSError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
            raise RemoteProtocolError(f"{self.authority} dropped the connection: {exc or type(exc).__name__}") from exc

    async def _read(self, connection: _Connection) -> HttpReply:
        status, headers, chunks = 0, {}, []
        while True:
            event = connection.h11.next_event()
            if event is h11.NEED_DATA:
                data = await connection.reader.read(65536)
                connection.answered = connection.answered or bool(data)
                connection.h11.receive_data(data)  # b"" tells h11 the server closed the connection
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                if connection.h11.our_state is h11.DONE and connection.h11.their_state is h11.DONE:
                    try:
                        connection.h11.start_next_cycle()
                    except h11.ProtocolError:
                        pass  # the server asked to close: not reusable
                return HttpReply(status, headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise RemoteProtocolError(f"{self.authority} closed the connection before answering")
            # h11.InformationalResponse (100 Continue): keep reading
