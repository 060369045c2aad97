"""The fake LLM server's HTTP: plain asyncio streams, HTTP/1.1 with keep-alive, Content-Length request bodies,
JSON answers, OpenAI's error shape, and server-sent events in a chunked body."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from engine.testing.fake_chat import HTTPError

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
SSE_HEAD = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Transfer-Encoding": "chunked"}


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def keep_alive(self) -> bool:  # HTTP/1.0 clients get one answer per connection: simple and always right
        return self.version == "HTTP/1.1" and self.headers.get("connection", "").lower() != "close"



async def read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HTTPError(400, "incomplete request head", close=True) from None
        return None  # a clean close between requests
    except asyncio.LimitOverrunError:
        raise HTTPError(431, "request head too large", close=True) from None
    lines = head.decode("latin-1").strip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/"):
        raise HTTPError(400, "malformed request line", close=True)
    if parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are spoken here", close=True)
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise HTTPError(400, "malformed header line", close=True)
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HTTPError(400, "only Content-Length request bodies are supported", close=True)
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise HTTPError(400, "invalid Content-Length", close=True)
    if int(length) > MAX_BODY_BYTES:
        raise HTTPError(413, "request body too large", close=True)
    body = await reader.readexactly(int(length))
    return Request(parts[0].upper(), parts[1].split("?", 1)[0], parts[2], headers, body)



async def send(writer: asyncio.StreamWriter, status: int, head: dict[str, str], body: bytes) -> None:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", *(f"{k}: {v}" for k, v in head.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()

async def send_json(writer: asyncio.StreamWriter, status: int, payload: Any, *, keep_alive: bool,
                     headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)),
            "Connection": "keep-alive" if keep_alive else "close", **(headers or {})}
    await send(writer, status, head, body)

async def send_error(writer: asyncio.StreamWriter, exc: HTTPError, *, keep_alive: bool) -> None:
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    payload = {"error": {"message": exc.message, "type": kind, "code": exc.status}}
    await send_json(writer, exc.status, payload, keep_alive=keep_alive, headers=exc.headers)

def json_body(request: Request) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "the body is not valid JSON") from None



async def client_leaves(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as the client closes its end (the reader sees EOF)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if reader.at_eof():
            return True
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return reader.at_eof()



async def send_events(writer: asyncio.StreamWriter, events: list[str]) -> None:
    """Each event as an SSE `data:` line in its own chunk, then the terminating chunk: the connection stays
    usable after it."""
    for data in events:
        raw = f"data: {data}\n\n".encode()
        writer.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
