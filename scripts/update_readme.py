"""Regenerate the README's configuration reference from the schema (tests check it is current)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from trainpilot.config_reference import reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- CONFIG-REFERENCE:START -->", "<!-- CONFIG-REFERENCE:END -->"


def render(text: str) -> str:
    return re.sub(f"{re.escape(START)}.*?{re.escape(END)}", f"{START}\n{reference_markdown()}\n{END}", text, flags=re.S)


if __name__ == "__main__":
    text = README.read_text(encoding="utf-8")
    README.write_text(render(text), encoding="utf-8")
    sys.exit(0)
