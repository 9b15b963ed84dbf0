"""How to reach a Chroma server: address, TLS, headers, token, tenant and database.

``chromadb.HttpClient`` (1.x) takes ``ssl``, ``headers``, ``tenant`` and ``database``; the
headers go on every request of its HTTP session. ``CHROMA_TOKEN`` becomes ``Authorization:
Bearer <token>``, the header Chroma's own token auth sends by default; a server (or a reverse
proxy in front of it) that wants another header gets it from ``CHROMA_HEADERS``. The token is a
secret: it is never part of a description or a log line.
"""

from __future__ import annotations

from typing import Any

from index.settings import Settings

__all__ = ["server_client", "server_description", "server_headers"]


def server_headers(settings: Settings) -> dict[str, str]:
    headers = dict(settings.chroma_headers)
    if settings.chroma_token is not None and settings.chroma_token.get_secret_value():
        headers["Authorization"] = f"Bearer {settings.chroma_token.get_secret_value()}"
    return headers


def server_description(settings: Settings) -> str:
    scheme = "https" if settings.chroma_ssl else "http"
    where = f"chroma server {scheme}://{settings.chroma_host}:{settings.chroma_port}"
    if (settings.chroma_tenant, settings.chroma_database) != ("default_tenant",
                                                               "default_database"):
        where += f" ({settings.chroma_tenant}/{settings.chroma_database})"
    return where


def server_client(settings: Settings, chroma_settings: Any) -> Any:
    import chromadb

    return chromadb.HttpClient(
        host=settings.chroma_host or "localhost",
        port=settings.chroma_port,
        ssl=settings.chroma_ssl,
        headers=server_headers(settings) or None,
        settings=chroma_settings,
        tenant=settings.chroma_tenant,
        database=settings.chroma_database,
    )
