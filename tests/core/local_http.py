"""A tiny real HTTP/1.1 server on 127.0.0.1 for outbound-fetch tests (no framework, no mocks).

Each connection serves one request and closes. Replies are looked up by path; every request is
recorded (method, target, headers, body, and the TLS SNI name when serving https).
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Reply:
    """What the server answers for one path. ``trickle`` sends the body one byte at a time."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    body: bytes = b"{}"
    send_length: bool = True
    trickle: float | None = None


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    sni: str | None


@dataclass
class LocalServer:
    """A running server: ``port``, the ``replies`` by path, and every request ``seen``."""

    port: int
    replies: dict[str, Reply]
    seen: list[Seen] = field(default_factory=list)


_REASONS = {200: "OK", 204: "No Content", 302: "Found", 404: "Not Found", 500: "Error"}


@asynccontextmanager
async def local_server(
    replies: Mapping[str, Reply], *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[LocalServer]:
    """Serve ``replies`` on 127.0.0.1 (a free port) until the block ends."""
    state = LocalServer(port=0, replies=dict(replies))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            ssl_object = writer.get_extra_info("ssl_object")
            sni = getattr(ssl_object, "sni_seen", None) if ssl_object is not None else None
            state.seen.append(Seen(method, target, headers, body, sni))
            reply = state.replies.get(target.split("?", 1)[0], Reply(status=404, body=b""))
            out = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'X')}"]
            out += [f"{name}: {value}" for name, value in reply.headers]
            if reply.send_length:
                out.append(f"Content-Length: {len(reply.body)}")
            out.append("Connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            if reply.trickle is None:
                writer.write(reply.body)
            else:
                for index in range(len(reply.body)):
                    writer.write(reply.body[index : index + 1])
                    await writer.drain()
                    await asyncio.sleep(reply.trickle)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class Tls:
    """A server TLS context for ``hostname`` and a client context trusting exactly that cert."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def tls_for(hostname: str) -> Tls:
    """A self-signed EC certificate for ``hostname``; the server records the SNI it received."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_path, key_path)

    def remember_sni(sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        sock.sni_seen = server_name  # type: ignore[attr-defined]

    server.sni_callback = remember_sni
    client = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    return Tls(server=server, client=client)
