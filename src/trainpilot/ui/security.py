"""What the dashboard lets through: the token, the Origin and Host of a request, which files it
serves, and which secrets never leave it.

- Every request is checked against the token when one is required (any host but loopback);
  a wrong or missing token gets 401. The token arrives as ``?token=`` once (then a cookie),
  an ``X-Token`` header or ``Authorization: Bearer``.
- A state-changing request is a POST with the token in a header (a cross-site form cannot set
  one) and, when the browser sends an Origin, an Origin that names this server.
- Files are served by run id and known names only; see :func:`run_file`.
- Values of API-key environment variables are masked in every response body.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from trainpilot.data.folder import IMAGE_SUFFIXES
from trainpilot.runs import Run

TOKEN_ENV = "TRAINPILOT_UI_TOKEN"
COOKIE = "trainpilot_token"
RUN_FILES = ("config.resolved.json", "metrics.jsonl", "adjustments.jsonl", "decisions.jsonl", "run.json",
             "summary.json", "status.json")
_SECRET_ENV = re.compile(r"(API_KEY|APIKEY|SECRET|ACCESS_TOKEN|AUTH_TOKEN)$", re.IGNORECASE)


class Forbidden(ValueError):
    """A request for something the dashboard does not serve (one line, shown as 404/403)."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_matches(given: str | None, token: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())


def request_token(headers, query: dict, cookies: dict) -> tuple[str | None, str | None]:
    """(token from a header, token from the query string or cookie)."""
    header = headers.get("x-token")
    auth = headers.get("authorization") or ""
    if not header and auth.lower().startswith("bearer "):
        header = auth[7:].strip()
    return header, query.get("token") or cookies.get(COOKIE)


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """No Origin (a script, curl) or an Origin whose host:port is the Host the request was sent to."""
    if not origin:
        return True
    if origin == "null" or not host_header:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()


def host_allowed(host_header: str | None, allowed: set[str] | None) -> bool:
    """Against DNS rebinding: a server on loopback answers only to loopback names."""
    if allowed is None:
        return True
    name = (host_header or "").rsplit(":", 1)[0] if not (host_header or "").startswith("[") else \
        (host_header or "").split("]")[0] + "]"
    return name.lower() in allowed


def run_file(run: Run, name: str) -> Path:
    """A file of ``run`` by a known name: one of :data:`RUN_FILES` or ``reports/<file>`` of a report the
    store lists. Anything else, and a file whose real path leaves the run directory (a symlink), is refused."""
    root = run.root.resolve()
    if name in RUN_FILES:
        path = run.root / name
    elif name.startswith("reports/") and name.count("/") == 1:
        path = next((p for p in run.reports if p.name == name.split("/", 1)[1]), None)
    else:
        path = None
    if path is None or not path.is_file():
        raise Forbidden(f"run '{run.id}' has no file '{name}'")
    real = path.resolve()
    if root not in real.parents:
        raise Forbidden(f"'{name}' of run '{run.id}' points outside the run directory; it is not served")
    return real


def image_file(path: str | Path) -> Path:
    """A path the user typed that must be an existing image file (by suffix)."""
    p = Path(path).expanduser()
    if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
        raise Forbidden(f"'{p}' is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return p


def secret_values(environ: dict | None = None) -> list[str]:
    """Values of environment variables that hold keys (``*_API_KEY``, ...): never shown, wherever they leak."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= 8}, key=len, reverse=True)


def mask(body: bytes, secrets_: list[str]) -> bytes:
    """``body`` with each secret replaced by as many ``*`` (same length, so Content-Length stays right)."""
    for value in secrets_:
        raw = value.encode()
        if raw in body:
            body = body.replace(raw, b"*" * len(raw))
    return body
