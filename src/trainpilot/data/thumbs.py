"""Small JPEG thumbnails as data URLs, for pages that must not serve a path (the dashboard, summary.html)."""

from __future__ import annotations

import base64
import io
from pathlib import Path


def thumbnail(path: Path | None = None, data: bytes | None = None, size: int = 96) -> str | None:
    """A small JPEG as a data URL, or None when the file does not decode as an image."""
    from PIL import Image

    from trainpilot.data.images import to_rgb

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as img:
            img.draft("RGB", (size, size))
            img = to_rgb(img)
            img.thumbnail((size, size))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=80)
    except Exception:  # noqa: BLE001 - any decoding failure means "not an image we can show"
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def thumbnail_under(root: Path, relative: str, size: int = 96) -> str | None:
    """The thumbnail of ``root/relative``, or None when that file is missing or not an image, or when
    ``relative`` is absolute or climbs out of ``root`` with ``..``. Links inside ``root`` are followed (a
    dataset of links is common), so the check is on the name as written, not on where a link points."""
    rel = Path(relative)
    if rel.is_absolute() or rel.drive or ".." in rel.parts:
        return None
    path = Path(root) / rel
    try:
        if not path.is_file():
            return None
    except OSError:
        return None
    return thumbnail(path, size=size)
