"""The container's HEALTHCHECK: ``GET http://127.0.0.1:$METRICS_PORT/healthz`` (stdlib only).

Exit status 0 = healthy, 1 = unhealthy (what Docker expects):

- a 2xx answer: healthy;
- any other HTTP status, a timeout or a broken answer: unhealthy (something listens on the
  port but the bot is not well, or is stuck);
- nothing listening on the port (connection refused): healthy, with a note on stdout, unless
  ``HEALTHCHECK_REQUIRE_SERVER=1``. newsbot does not serve ``/healthz`` yet (the health and
  metrics server is being built): until it does, the check must not mark every container
  unhealthy. While the container runs, its PID 1 is ``newsbot serve`` itself, so a refused
  connection means "no health server", not "the bot is gone" (a bot that exits stops the
  container and ``restart: unless-stopped`` brings it back). Once the server exists, set
  ``HEALTHCHECK_REQUIRE_SERVER=1`` (or drop this fallback).
"""

from __future__ import annotations

import errno
import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = 9108
PATH = "/healthz"
TIMEOUT_S = 5.0


def check(port: int, *, timeout: float = TIMEOUT_S, require_server: bool = False) -> int:
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url} answered {exc.code}")
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, OSError) and reason.errno == errno.ECONNREFUSED:
            if require_server:
                print(f"unhealthy: nothing listens on {url}")
                return 1
            print(f"no health server on port {port} (not enabled yet): healthy by default")
            return 0
        print(f"unhealthy: {url}: {reason}")
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
    require = os.environ.get("HEALTHCHECK_REQUIRE_SERVER", "").lower() in {"1", "true", "yes"}
    return check(port, require_server=require)


if __name__ == "__main__":
    sys.exit(main())
