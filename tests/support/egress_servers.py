"""Servers for the SSRF and URL-fetch tests: a canary that must never be reached, and a document server.

Both bind loopback addresses: the canary 127.0.0.1 (and ::1 when the machine has IPv6), the document server
127.0.0.2, which the tests allow with ``egress.allow_networks = ["127.0.0.2/32"]`` while everything else on
loopback stays forbidden. Linux routes all of 127.0.0.0/8 to the loopback interface, so no setup is needed.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DOC_HOST = "127.0.0.2"


class Canary:
    """A TCP listener that counts every connection it accepts; a correct guard leaves it at zero."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"canary-{host}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def ipv6_loopback_available() -> bool:
    """Whether ::1 can be bound here (containers sometimes have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@dataclass
class DocServerState:
    """What the document server serves and what it saw."""

    documents: dict[str, bytes] = field(default_factory=dict)
    failures_left: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    """Routes: /doc/NAME, /flaky/NAME (503 while failures are left), /status/CODE, /redirect?to=URL,
    /endless (a body that never ends), /declared (announces a huge Content-Length), /silent (no answer at
    all), /slow (one byte, then silence), /trickle (one byte every 50 ms)."""

    server: _DocHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        state.requests.append((parts.path, self.headers.get("Host")))
        head, _, rest = parts.path.lstrip("/").partition("/")
        if head == "doc" and rest in state.documents:
            self._send(200, state.documents[rest])
        elif head == "flaky" and rest in state.documents:
            if state.failures_left.get(rest, 0) > 0:
                state.failures_left[rest] -= 1
                self._send(503, b"try later")
            else:
                self._send(200, state.documents[rest])
        elif head == "status":
            self._send(int(rest), b"status")
        elif head == "redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["to"][0])
            self.end_headers()
        elif head == "endless":
            self._endless(parts.path)
        elif head == "declared":
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self._write(parts.path, b"%PDF-1.4\n")
        elif head == "silent":
            state.stop.wait(30)  # the request was read; no answer comes
        elif head in ("slow", "trickle"):
            self.send_response(200)
            self.end_headers()
            self._write(parts.path, b"%")
            interval = 30.0 if head == "slow" else 0.05
            while not state.stop.wait(interval):
                if not self._write(parts.path, b"P"):
                    return
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(self.path, body)

    def _write(self, key: str, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            return False
        state = self.server.state
        state.bytes_sent[key] = state.bytes_sent.get(key, 0) + len(data)
        return True

    def _endless(self, key: str) -> None:
        self.send_response(200)
        self.end_headers()
        chunk = b"%PDF-1.4\n" + b"0" * (64 * 1024 - 9)
        # Bounded so a broken client cannot keep the thread forever; far above any test cap.
        for _ in range(4096):
            if self.server.state.stop.is_set() or not self._write(key, chunk):
                return


class _DocHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    state: DocServerState


class _DocHTTPServer6(_DocHTTPServer):
    address_family = socket.AF_INET6


@dataclass
class DocServer:
    """A running document server: its base URL, its state (documents to serve, requests seen)."""

    base_url: str
    host: str
    port: int
    state: DocServerState

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return f"{self.base_url}{path}"


@contextlib.contextmanager
def doc_server(
    host: str = DOC_HOST, tls: ssl.SSLContext | None = None, name: str | None = None
) -> Iterator[DocServer]:
    """Serve :class:`_Handler` on ``host`` (HTTPS with ``tls``; ``name`` is then the host of its URLs)."""
    server_class = _DocHTTPServer6 if ":" in host else _DocHTTPServer
    server = server_class((host, 0), _Handler)
    server.state = DocServerState()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    scheme = "https" if tls is not None else "http"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield DocServer(f"{scheme}://{name or host}:{port}", host, int(port), server.state)
    finally:
        server.state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class TestCertificates:
    """A throwaway CA and a server certificate it signed for ``name``, as files."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self, sni_seen: list[str]) -> ssl.SSLContext:
        """A server-side TLS context with the certificate; records the SNI names clients send."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)

        def remember(_sock: ssl.SSLObject, server_name: str, _ctx: ssl.SSLContext) -> int | None:
            sni_seen.append(server_name or "")  # None (no SNI sent) despite the stub's type
            return None

        context.sni_callback = remember
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_certificates(folder: Path, name: str) -> TestCertificates:
    """A CA and a certificate for the DNS name ``name`` signed by it (cryptography, no network)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pagemill test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TestCertificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files
