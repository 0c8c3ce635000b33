"""Serving the dashboard: the bind and token rules, a clear error for a port in use, and the child
process that `trainpilot train --ui` starts beside a training run."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from trainpilot.ui import security

DEFAULT_PORT = 7860


class ServeError(ValueError):
    """A dashboard that cannot be served as asked (one line)."""


def check_port(host: str, port: int) -> None:
    """Fail now, in one line, when the port is taken or the address is not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ServeError(f"port {port} on {host} is already in use (another `trainpilot ui`?); "
                                 f"choose another with --port") from None
            raise ServeError(f"cannot listen on {host}:{port}: {err.strerror}; use --host 127.0.0.1 or an "
                             f"address of this machine") from None


def resolve_token(host: str, token: str | None) -> tuple[str, bool, bool]:
    """(token, required for every request, generated here). Loopback needs the token only for POSTs;
    any other host needs it for everything."""
    given = token or os.environ.get(security.TOKEN_ENV) or None
    if given is not None and len(given) < 8:
        raise ServeError("the token must be at least 8 characters; leave --token out to have one generated")
    required = not security.is_loopback(host) or given is not None
    return given or security.new_token(), required, given is None


def urls(host: str, port: int, token: str, required: bool, path: str = "/") -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{shown}:{port}{path}"
    return f"{url}?token={token}" if required else url


def serve(runs_dir: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
          open_path: str = "/", quiet: bool = False) -> None:
    """Serve the dashboard until Ctrl-C."""
    import uvicorn

    from trainpilot.ui.app import create_app

    runs_dir = Path(runs_dir).expanduser()
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ServeError(f"--runs-dir '{runs_dir}' is a file, not a folder of runs")
    if not 0 < port < 65536:
        raise ServeError(f"--port {port} is not a port number (1-65535)")
    token, required, _ = resolve_token(host, token)
    check_port(host, port)
    runs_dir.mkdir(parents=True, exist_ok=True)
    allowed = None if not security.is_loopback(host) else {"127.0.0.1", "localhost", "[::1]", host.lower()}
    app = create_app(runs_dir, token=token, require_token=required, allowed_hosts=allowed)
    from trainpilot.ui.api import row_of

    threading.Thread(target=app.state.ui.warm, args=(row_of,), daemon=True, name="warm-runs").start()
    if not quiet:
        print(f"trainpilot dashboard for {runs_dir.resolve()}:\n  {urls(host, port, token, required, open_path)}",
              flush=True)
        if required:
            print("  every request needs this token (?token=… once, then a cookie; or the X-Token header)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def start_beside_training(runs_dir: Path, run_name: str | None, port: int = DEFAULT_PORT) -> subprocess.Popen | None:
    """`trainpilot train --ui`: the dashboard in its own process (so it never holds the training process's
    interpreter lock), bound to loopback; it ends with the training process."""
    path = f"/runs/{run_name}" if run_name else "/"
    check_port("127.0.0.1", port)
    cmd = [sys.executable, "-m", "trainpilot", "ui", "--runs-dir", str(runs_dir), "--port", str(port),
           "--open", path, "--parent", str(os.getpid())]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
