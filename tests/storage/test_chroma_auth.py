"""A secured Chroma server: TLS flag, headers, a token, a tenant and a database.

The installed ``chroma run`` (chromadb 1.x, the Rust server) has no authentication of its
own: its docs secure it with a reverse proxy that checks a token. So the test puts a small
token-checking proxy in front of a real ``chroma run``: it refuses requests without
``Authorization: Bearer <token>`` (401, as such a proxy would) and records every request's
headers, so the test sees the settings reach the server on every call. The same proxy,
serving TLS with a certificate made for the test (``openssl``), checks ``CHROMA_SSL``: HTTPS,
and the certificate verified against the trust store (``SSL_CERT_FILE`` for a private CA).
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from index.embed import make_embedder
from index.runtime import open_services
from index.sample import HERE as SAMPLE_DIR
from index.settings import Settings
from index.storage.chroma_client import server_description, server_headers

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests"


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: int, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.token = token
        self.seen: list[dict[str, str]] = []
        self.refused = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with self.server.lock:
            self.server.seen.append({k.lower(): v for k, v in self.headers.items()}
                                    | {":path": self.path})
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            with self.server.lock:
                self.server.refused += 1
            payload = b'{"error":"Unauthorized","message":"missing or wrong token"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in {"host", "connection", "content-length"}}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in {"transfer-encoding", "connection", "content-length"}:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward


@pytest.fixture
def auth_proxy(chroma_server: int) -> Iterator[_Proxy]:
    proxy = _Proxy(chroma_server, TOKEN)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


class _TlsProxy(_Proxy):
    """The token-checking proxy behind TLS: the handshake is made in the request's thread, so
    a client that fails it (a plain-HTTP one, one that distrusts the certificate) only ends
    its own connection."""

    def __init__(self, upstream: int, token: str, context: ssl.SSLContext) -> None:
        super().__init__(upstream, token)
        self.context = context
        self.handshakes = 0
        self.failed_handshakes = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            with self.lock:
                self.failed_handshakes += 1
            return
        with self.lock:
            self.handshakes += 1
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request: nothing to report


@pytest.fixture
def tls_proxy(chroma_server: int, tmp_path: Path) -> Iterator[tuple[_TlsProxy, Path]]:
    """A TLS proxy with a self-signed certificate for 127.0.0.1; yields it and the cert file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl on PATH to make the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=newsbot-test-chroma",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    proxy = _TlsProxy(chroma_server, TOKEN, context)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy, cert
    finally:
        proxy.shutdown()
        proxy.server_close()


def _corpus(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in (SAMPLE_DIR / "wikinews-gum.jsonl").open()][:3]
    path = tmp_path / "n.jsonl"
    path.write_text("".join(json.dumps(dict(r, text=r["text"][:600])) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _settings(tmp_path: Path, port: int, **extra: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", embedding_model="minilm",
                    chroma_host="127.0.0.1", chroma_port=port,
                    chroma_collection=f"auth_{tmp_path.name[-20:]}".replace("-", "_"), **extra)


def test_header_and_token_settings_are_parsed() -> None:
    s = Settings(_env_file=None, chroma_host="h", chroma_headers='{"X-Api-Key": "k", "X-N": 3}',
                 chroma_token="tok", chroma_ssl="true")
    assert server_headers(s) == {"X-Api-Key": "k", "X-N": "3", "Authorization": "Bearer tok"}
    assert server_description(s).startswith("chroma server https://h:8000")
    assert "tok" not in server_description(s)
    with pytest.raises(ValueError, match="CHROMA_HEADERS is not JSON"):
        Settings(_env_file=None, chroma_headers="X-Api-Key: k")
    with pytest.raises(ValueError, match="JSON object of strings"):
        Settings(_env_file=None, chroma_headers='["X-Api-Key"]')


async def test_token_and_headers_reach_the_server_on_every_request(
    tmp_path: Path, auth_proxy: _Proxy
) -> None:
    port = auth_proxy.server_address[1]
    settings = _settings(tmp_path, port, chroma_token=TOKEN,
                         chroma_headers={"X-Newsroom": "desk-7"})
    services = await open_services(settings, make_embedder(settings))
    try:
        report = await services.index([_corpus(tmp_path)])
        assert report.added == 3
        vectors = await services.vectors()
        assert vectors.count() == (await services.store.counts())["chunks"] > 0
    finally:
        await services.close()
    data_calls = [h for h in auth_proxy.seen if "/collections" in h[":path"]]
    assert data_calls, "no collection call went through the proxy"
    assert all(h.get("authorization") == f"Bearer {TOKEN}" for h in auth_proxy.seen)
    assert all(h.get("x-newsroom") == "desk-7" for h in auth_proxy.seen)
    assert auth_proxy.refused == 0


async def test_without_the_token_the_proxy_refuses_and_opening_fails(
    tmp_path: Path, auth_proxy: _Proxy
) -> None:
    port = auth_proxy.server_address[1]
    settings = _settings(tmp_path, port)
    services = await open_services(settings, make_embedder(settings))
    try:
        with pytest.raises(Exception) as info:  # noqa: PT011 - chromadb's own error types
            await services.vectors()
        assert "Unauthorized" in str(info.value) or "401" in str(info.value)
    finally:
        await services.close()
    assert auth_proxy.refused >= 1


async def test_chroma_ssl_speaks_https_and_checks_the_certificate(
    tmp_path: Path, tls_proxy: tuple[_TlsProxy, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, cert = tls_proxy
    port = proxy.server_address[1]
    # The certificate is trusted (a private CA's, given as SSL_CERT_FILE): indexed over HTTPS.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    settings = _settings(tmp_path, port, chroma_ssl=True, chroma_token=TOKEN)
    assert server_description(settings).startswith(f"chroma server https://127.0.0.1:{port}")
    services = await open_services(settings, make_embedder(settings))
    try:
        assert (await services.index([_corpus(tmp_path)])).added == 3
        assert (await services.vectors()).count() == (await services.store.counts())["chunks"]
    finally:
        await services.close()
    assert proxy.handshakes >= 1 and proxy.failed_handshakes == 0
    assert any("/collections" in h[":path"] for h in proxy.seen) and proxy.refused == 0

    # The same server, its certificate not trusted: the client refuses it, nothing is sent.
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    seen = len(proxy.seen)
    distrusting = _settings(tmp_path / "other", port, chroma_ssl=True, chroma_token=TOKEN)
    services = await open_services(distrusting, make_embedder(distrusting))
    try:
        with pytest.raises(Exception) as info:  # noqa: PT011 - chromadb's own error types
            await services.vectors()
    finally:
        await services.close()
    chain = [str(e) for e in (info.value, info.value.__cause__, info.value.__context__) if e]
    assert any("CERTIFICATE_VERIFY_FAILED" in m or "certificate verify failed" in m
               for m in chain), chain
    assert proxy.failed_handshakes >= 1 and len(proxy.seen) == seen

    # CHROMA_SSL off against a TLS port: plain HTTP is not answered either.
    plain = _settings(tmp_path / "plain", port, chroma_token=TOKEN)
    services = await open_services(plain, make_embedder(plain))
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever chromadb makes of it
            await services.vectors()
    finally:
        await services.close()
    assert len(proxy.seen) == seen


async def test_tenant_and_database_are_used(tmp_path: Path, chroma_server: int) -> None:
    import chromadb

    admin = chromadb.AdminClient(chromadb.config.Settings(
        chroma_api_impl="chromadb.api.fastapi.FastAPI", chroma_server_host="127.0.0.1",
        chroma_server_http_port=chroma_server, anonymized_telemetry=False,
    ))
    tenant, database = f"newsroom_{tmp_path.name[-8:]}", "archive_db"
    admin.create_tenant(tenant)
    admin.create_database(database, tenant=tenant)
    settings = _settings(tmp_path, chroma_server, chroma_tenant=tenant, chroma_database=database)
    services = await open_services(settings, make_embedder(settings))
    try:
        assert (await services.index([_corpus(tmp_path)])).added == 3
        vectors = await services.vectors()
        assert f"({tenant}/{database})" in vectors.description
    finally:
        await services.close()
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server, tenant=tenant,
                                 database=database)
    assert settings.chroma_collection in [c.name for c in client.list_collections()]
    default = chromadb.HttpClient(host="127.0.0.1", port=chroma_server)
    assert settings.chroma_collection not in [c.name for c in default.list_collections()]


def test_chroma_run_itself_does_not_check_a_token(chroma_server: int) -> None:
    """What the server offers: no auth of its own (hence the proxy above, and the docs)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{chroma_server}/api/v2/tenants/default_tenant/databases",
        headers={"Authorization": "Bearer wrong"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
