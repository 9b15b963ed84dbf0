"""The container's HEALTHCHECK: ``GET http://127.0.0.1:$METRICS_PORT/healthz`` (stdlib only).

Exit status 0 = healthy, 1 = unhealthy (what Docker expects):

- a 2xx answer: healthy;
- any other HTTP status (newsbot answers 503 with the reason: the store is unreadable, the
  event loop is stuck, no updates arrive), a timeout, a broken answer, or nothing listening
  on the port (the health server is started with the bot, within the image's start period):
  unhealthy, with the reason on stdout (``docker inspect`` shows it);
- ``METRICS_PORT=0``: the operator switched the health server off, so there is nothing to
  ask: healthy, with a note.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = 9108
PATH = "/healthz"
TIMEOUT_S = 5.0


def check(port: int, *, timeout: float = TIMEOUT_S) -> int:
    if port == 0:
        print("METRICS_PORT=0: the health server is off, nothing to check")
        return 0
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        print(f"unhealthy: {url} answered {exc.code}" + (f": {detail}" if detail else ""))
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {getattr(exc, 'reason', exc)}")
        return 1
    if 200 <= status < 300:
        return 0
    print(f"unhealthy: {url} answered {status}")
    return 1


def main() -> int:
    try:
        port = int(os.environ.get("METRICS_PORT") or DEFAULT_PORT)
    except ValueError:
        print(f"unhealthy: METRICS_PORT={os.environ['METRICS_PORT']!r} is not a port number")
        return 1
    return check(port)


if __name__ == "__main__":
    sys.exit(main())
