"""`trainpilot ui`: serve the dashboard; and the dashboard that `trainpilot train --ui` runs beside training."""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path
from typing import Optional

import typer

from trainpilot.ui.server import DEFAULT_PORT


def _exit_with(parent: int) -> None:
    """End this process when the training process it serves has ended (even by kill -9)."""
    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
            time.sleep(1.0)
    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def ui(runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="The folder of run directories to serve."),
       host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs a token."),
       port: int = typer.Option(DEFAULT_PORT, "--port", help="Port to listen on."),
       token: Optional[str] = typer.Option(None, "--token", help="The access token (default: generated and printed; "
                                                                  "or set TRAINPILOT_UI_TOKEN)."),
       open_path: str = typer.Option("/", "--open", hidden=True),
       parent: Optional[int] = typer.Option(None, "--parent", hidden=True)) -> None:
    """Serve the web dashboard: runs, live curves, adjustments, approve/reject, new runs, predict."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as err:
        raise ValueError(f"the dashboard needs the ui extra ({err.name} is missing): "
                         f"pip install 'trainpilot[ui]'") from None
    from trainpilot.ui.server import serve

    if parent:
        _exit_with(parent)
    serve(runs_dir, host=host, port=port, token=token, open_path=open_path)


def serve_during_training(runs_dir: Path, name: Optional[str], resume: Optional[Path], port: int | None = None) -> None:
    """`trainpilot train --ui`: start the dashboard for this run in a child process (port: TRAINPILOT_UI_PORT,
    default 7860); it stops when training ends."""
    from trainpilot.ui.server import start_beside_training

    if port is None:
        raw = os.environ.get("TRAINPILOT_UI_PORT") or str(DEFAULT_PORT)
        if not raw.isdigit():
            raise ValueError(f"TRAINPILOT_UI_PORT={raw!r} is not a port number")
        port = int(raw)
    if resume is not None:
        runs_dir, name = Path(resume).expanduser().parent, Path(resume).name
    proc = start_beside_training(Path(runs_dir), name, port)
    if proc is not None:
        atexit.register(lambda: proc.poll() is None and proc.terminate())


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
