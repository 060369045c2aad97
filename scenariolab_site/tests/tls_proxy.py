"""A small TLS-terminating reverse proxy on loopback, for tests: what nginx or Caddy does in front of the site.

It speaks HTTPS to the browser (a self-signed certificate made on the spot) and plain HTTP to the site, adding
X-Forwarded-Proto: https and X-Forwarded-For and keeping the browser's Host, as the README's nginx example
does. Each connection carries one request (Connection: close both ways), except a WebSocket upgrade, which is
piped both ways until either side closes. With `websockets=False` it is a proxy set up without them (nginx without
its upgrade lines): the upgrade headers are dropped and the request goes on as a plain one.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import tempfile
import threading
from pathlib import Path

HEAD_LIMIT = 64 * 1024


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "proxy-cert.pem", folder / "proxy-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _rewrite(head: bytes, *, drop: tuple[bytes, ...], add: list[bytes]) -> bytes:
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if not line.lower().startswith(drop)]
    return b"\r\n".join(kept + add) + b"\r\n\r\n"


class TLSProxy:
    def __init__(self, upstream_port: int, *, port: int = 0, websockets: bool = True) -> None:
        self.upstream_port = upstream_port
        self.websockets = websockets
        self.port = port  # 0: any free port
        self.requests = 0
        self._folder = tempfile.TemporaryDirectory(prefix="tls-proxy-")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start_in_thread(self) -> TLSProxy:
        cert_file, key_file = self_signed_certificate(Path(self._folder.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=context, limit=HEAD_LIMIT))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="tls-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the TLS proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._folder.cleanup()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            head = await client_reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
            client_writer.close()
            return
        self.requests += 1
        upgrade = b"\r\nupgrade:" in head.lower()
        if upgrade and not self.websockets:
            head, upgrade = _rewrite(head, drop=(b"upgrade:",), add=[]), False
        peer = (client_writer.get_extra_info("peername") or ("127.0.0.1",))[0].encode()
        request = _rewrite(head, drop=(b"x-forwarded-",) + (() if upgrade else (b"connection:",)),
                           add=[b"X-Forwarded-Proto: https", b"X-Forwarded-For: " + peer]
                           + ([] if upgrade else [b"Connection: close"]))
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port, limit=HEAD_LIMIT)
        except OSError:
            client_writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            client_writer.close()
            return
        upstream_writer.write(request)
        to_site = asyncio.ensure_future(self._pipe(client_reader, upstream_writer))
        try:
            response = await upstream_reader.readuntil(b"\r\n\r\n")
            if not upgrade:
                response = _rewrite(response, drop=(b"connection:",), add=[b"Connection: close"])
            client_writer.write(response)
            await self._pipe(upstream_reader, client_writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            to_site.cancel()
            for writer in (upstream_writer, client_writer):
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(64 * 1024):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        if not writer.is_closing() and writer.can_write_eof():
            try:
                writer.write_eof()
            except (OSError, RuntimeError):
                pass
