"""engine.llm.http against real servers on loopback: keep-alive reuse, a stale connection, errors."""

from __future__ import annotations

import asyncio

import pytest

from engine.llm.http import ConnectError, HttpPool, ReadTimeout
from engine.testing.fake_llm import FakeLLMServer

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}


async def test_calls_share_kept_alive_connections_and_read_json():
    async with FakeLLMServer() as server:
        pool = HttpPool(server.base_url)
        first = await asyncio.gather(*(pool.post_json("/chat/completions", BODY) for _ in range(6)))
        again = await asyncio.gather(*(pool.post_json("/chat/completions", BODY) for _ in range(6)))
        await pool.aclose()
        stats = server.stats
    assert [r.status_code for r in first + again] == [200] * 12
    assert all(r.json()["choices"][0]["message"]["content"] for r in first + again)
    assert first[0].headers["content-type"].startswith("application/json")
    assert stats["requests"] == 12 and stats["connections"] == 6  # the second round reused the first's


async def test_an_error_status_comes_back_as_a_reply():
    async with FakeLLMServer(faults=["rate_limit"], retry_after=3) as server:
        pool = HttpPool(server.base_url)
        reply = await pool.post_json("/chat/completions", BODY)
        await pool.aclose()
    assert reply.status_code == 429 and reply.headers["retry-after"] == "3"
    assert "injected fault" in reply.text


async def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error():
    answers = 0

    async def answer_once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answers
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(len(b'{"a": 1}'))
        answers += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # keep-alive was not refused, but the server goes away anyway (an idle timeout)

    server = await asyncio.start_server(answer_once_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = HttpPool(f"http://127.0.0.1:{port}")
    assert (await pool.post_json("/x", {"a": 1})).json() == {}
    await asyncio.sleep(0.2)  # the server has closed the kept connection
    assert (await pool.post_json("/x", {"a": 1})).json() == {}
    await pool.aclose()
    server.close()
    assert answers == 2


async def test_a_refused_connection_and_a_silent_server_are_transport_errors():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
        await HttpPool(f"http://127.0.0.1:{port}").post_json("/x", {})

    async with FakeLLMServer(faults=["hang"], hang_seconds=5) as hanging:
        pool = HttpPool(hanging.base_url, read_timeout=0.2)
        with pytest.raises(ReadTimeout, match="within 0.2 s"):
            await pool.post_json("/chat/completions", BODY)
        await pool.aclose()


async def test_https_goes_through_the_proxy_https_proxy_names(monkeypatch):
    asked = []

    async def refusing_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append((await reader.readuntil(b"\r\n\r\n")).decode())
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    proxy = await asyncio.start_server(refusing_proxy, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ConnectError, match=f"through the proxy 127.0.0.1:{port}.*403"):
        await HttpPool("https://models.example.org/v1").post_json("/chat/completions", BODY)
    assert asked and asked[0].startswith("CONNECT models.example.org:443 HTTP/1.1\r\n")

    monkeypatch.setenv("NO_PROXY", "models.example.org")
    from engine.llm.http import https_proxy

    assert https_proxy("models.example.org") is None and https_proxy("other.example.org") == ("127.0.0.1", port)
    proxy.close()


async def test_an_answer_cut_short_on_a_kept_connection_is_not_sent_again():
    from engine.llm.http import RemoteProtocolError

    received = 0

    async def answer_then_cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(len(b'{"a": 1}'))
            except asyncio.IncompleteReadError:
                return
            received += 1
            if received == 1:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"partial")  # the server had the request
            await writer.drain()
            writer.close()
            return

    server = await asyncio.start_server(answer_then_cut, "127.0.0.1", 0)
    pool = HttpPool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    assert (await pool.post_json("/x", {"a": 1})).json() == {}
    with pytest.raises(RemoteProtocolError):
        await pool.post_json("/x", {"a": 1})  # on the kept connection, answered in part, then cut
    await pool.aclose()
    server.close()
    assert received == 2, "a request the server took is left to the caller's retry policy, not sent again here"


async def test_a_header_that_cannot_be_sent_is_a_clear_error_not_a_transport_failure():
    async with FakeLLMServer() as server:
        pool = HttpPool(server.base_url, headers={"Authorization": "Bearer key-with-a-newline\n"})
        with pytest.raises(ValueError, match="cannot send the request"):
            await pool.post_json("/chat/completions", BODY)
        await pool.aclose()
