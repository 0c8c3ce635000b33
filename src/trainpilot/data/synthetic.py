"""Deterministic synthetic defect-inspection images.

Produces a small image-folder dataset of brushed-metal surfaces, each with one
kind of defect, so that ``trainpilot demo`` and the test-suite can train a real
classifier without shipping or downloading any data.

Every image is drawn from its own generator seeded by ``(seed, class name,
index)``: the files therefore do not depend on the order in which they are
generated, on which other classes are requested, or on the split layout.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

DEFECT_CLASSES: tuple[str, ...] = ("划痕", "污点", "缺失", "变形", "异物")
"""Folder names: scratch, stain, missing chunk, deformation, foreign particle."""

MARKER_NAME = ".trainpilot_synthetic.json"
_FORMAT_VERSION = 1  # bump when the drawing code changes, so old sets are rebuilt

Rng = np.random.Generator


# --------------------------------------------------------------------------- surface


def _value_noise(rng: Rng, shape: tuple[int, int], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth random field: a random lattice sampled at (u, v) with smoothstep weights.

    ``shape`` must be powers of two so that wrapping is a cheap bit-mask.
    """
    gy, gx = shape
    grid = rng.standard_normal(gy * gx, dtype=np.float32)
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    x0, y0 = iu.astype(np.intp) & (gx - 1), (iv.astype(np.intp) & (gy - 1)) * gx
    x1, y1 = (x0 + 1) & (gx - 1), (y0 + gx) & (gy * gx - 1)
    a, b, c, d = (grid.take(i) for i in (y0 + x0, y0 + x1, y1 + x0, y1 + x1))
    top = a + (b - a) * fu
    return top + (c + (d - c) * fu - top) * fv


def _surface(rng: Rng, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Grey brushed-metal texture evaluated at pixel coordinates (x, y).

    Taking coordinates rather than returning a bitmap lets the deformation
    painter evaluate the same texture on a warped grid.
    """
    s = n / 128
    a = float(rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.25))  # mostly axis-aligned brushing
    along = x * math.cos(a) + y * math.sin(a)
    across = y * math.cos(a) - x * math.sin(a)
    streaks = _value_noise(rng, (256, 16), along / (24 * s), across / (0.9 * s))
    fine = _value_noise(rng, (512, 32), along / (6 * s), across / (0.5 * s))
    mottle = _value_noise(rng, (8, 8), x / (n / 3), y / (n / 3))
    g = rng.uniform(0, 2 * np.pi)
    gradient = ((x * math.cos(g) + y * math.sin(g)) / n - 0.5) * rng.uniform(0.04, 0.2)
    return (rng.uniform(0.35, 0.68) + rng.uniform(0.025, 0.06) * streaks
            + 0.015 * fine + rng.uniform(0.01, 0.025) * mottle + gradient)


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    # float32 throughout: half the memory traffic, and it is plenty for 8-bit output
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) + np.float32(0.5)
    return x, y


def _uniform2(rng: Rng, lo: float, hi: float) -> tuple[float, float]:
    """Two uniform draws as plain floats (numpy scalars would upcast float32 maps)."""
    a, b = rng.uniform(lo, hi, 2)
    return float(a), float(b)


def _blob_radius(rng: Rng, theta: np.ndarray, harmonics: int, wobble: float) -> np.ndarray:
    """Relative radius of an irregular closed shape as a function of angle."""
    r = np.ones_like(theta)
    for k in range(2, 2 + harmonics):
        r += rng.uniform(0, wobble) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return r


# --------------------------------------------------------------------------- painters
# Each painter returns an RGB float image in [0, 1]-ish range for an n x n canvas.


def _to_rgb(rng: Rng, grey: np.ndarray) -> np.ndarray:
    tint = (1 + rng.normal(0, 0.015, 3)).astype(np.float32)  # warm/cool steel, per image
    return grey[..., None] * tint


def _scratch(rng: Rng, n: int) -> np.ndarray:
    x, y = _grid(n)
    grey = _surface(rng, x, y, n)
    base_dir = rng.uniform(0, np.pi)
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        d = base_dir + rng.normal(0, 0.2)
        length = rng.uniform(0.35, 0.9) * n
        cx, cy = _uniform2(rng, 0.25 * n, 0.75 * n)
        t = np.linspace(-0.5, 0.5, 8, dtype=np.float32)
        bend = rng.normal(0, 0.08) * length * (0.25 - t**2)  # gentle quadratic curve
        ptx = cx + t * length * math.cos(d) - bend * math.sin(d)
        pty = cy + t * length * math.sin(d) + bend * math.cos(d)
        width = rng.uniform(0.6, 1.4) * max(n / 128, 1)  # >= 0.5 px or small images lose it
        amp = rng.uniform(0.2, 0.4) * (1 if rng.random() < 0.5 else -1)  # bright or dark groove
        # Only pixels in the line's bounding box can be affected: compute there.
        pad = 4 * width + 1
        x0, x1 = int(max(ptx.min() - pad, 0)), int(min(ptx.max() + pad + 1, n))
        y0, y1 = int(max(pty.min() - pad, 0)), int(min(pty.max() + pad + 1, n))
        px, py = x[y0:y1, x0:x1, None], y[y0:y1, x0:x1, None]
        ax, ay, abx, aby = ptx[:-1], pty[:-1], np.diff(ptx), np.diff(pty)
        # distance from every pixel to every segment, then the nearest one
        h = np.clip(((px - ax) * abx + (py - ay) * aby) / (abx**2 + aby**2), 0, 1)
        d2 = ((px - ax - h * abx) ** 2 + (py - ay - h * aby) ** 2).min(-1)
        grey[y0:y1, x0:x1] += amp * np.exp(d2 * (-0.5 / width**2))
    return _to_rgb(rng, grey)


def _ellipse_coords(rng: Rng, x: np.ndarray, y: np.ndarray, centre: tuple[float, float],
                    max_stretch: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets from ``centre`` in a randomly rotated, stretched frame."""
    stretch, rot = rng.uniform(1, max_stretch), rng.uniform(0, np.pi)
    dx, dy = x - centre[0], y - centre[1]
    c, s = math.cos(rot), math.sin(rot)
    return (dx * c + dy * s) / stretch, dy * c - dx * s


def _stain(rng: Rng, n: int) -> np.ndarray:
    x, y = _grid(n)
    grey = _surface(rng, x, y, n)
    radius = rng.uniform(0.1, 0.2) * n
    u, v = _ellipse_coords(rng, x, y, _uniform2(rng, 0.25 * n, 0.75 * n), 1.8)
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    edge = radius * _blob_radius(rng, theta, 3, 0.18)
    soft = rng.uniform(0.15, 0.35) * radius  # wide, blurry rim: dried liquid, not a chip
    alpha = 1 / (1 + np.exp(np.clip((r - edge) / soft, -30, 30)))
    alpha *= 0.85 + 0.15 * _value_noise(rng, (8, 8), x / (n / 6), y / (n / 6))
    tone = np.array([1.0, 0.95, 0.85], np.float32) * rng.uniform(0.4, 0.65)  # faintly brown
    return _to_rgb(rng, grey) * (1 - alpha[..., None] * tone)


def _missing(rng: Rng, n: int) -> np.ndarray:
    x, y = _grid(n)
    grey = _surface(rng, x, y, n)
    centre = list(_uniform2(rng, 0.2 * n, 0.8 * n))
    if rng.random() < 0.7:  # chips usually break off at a border; half lies outside
        radius = rng.uniform(0.14, 0.28) * n
        centre[int(rng.integers(2))] = int(rng.integers(2)) * n + rng.uniform(-0.3, 0.3) * radius
    else:
        radius = rng.uniform(0.08, 0.18) * n
    k = int(rng.integers(5, 10))  # evenly spread, jittered corners: never a sliver
    angles = (np.arange(k) + rng.uniform(-0.35, 0.35, k) + rng.random()) * (2 * np.pi / k)
    radii = radius * rng.uniform(0.55, 1.15, len(angles))
    poly = [(centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)) for r, t in zip(radii, angles)]
    mask_img = Image.new("L", (n, n), 0)
    ImageDraw.Draw(mask_img).polygon([(float(a), float(b)) for a, b in poly], fill=255)
    mask = np.asarray(mask_img) > 0
    # 1-px outer rim = freshly broken edge, catches light (pad, not roll: no wrap-around)
    m = np.pad(mask, 1)
    grown = m[1:-1, 1:-1] | m[:-2, 1:-1] | m[2:, 1:-1] | m[1:-1, :-2] | m[1:-1, 2:]
    grey = np.where(grown & ~mask, grey + rng.uniform(0.08, 0.2), grey)
    hole = rng.uniform(0.0, 0.1) + 0.02 * rng.standard_normal((n, n), dtype=np.float32)
    return _to_rgb(rng, np.where(mask, hole, grey))


def _deform(rng: Rng, n: int) -> np.ndarray:
    x, y = _grid(n)
    cx, cy = _uniform2(rng, 0.25 * n, 0.75 * n)
    radius = rng.uniform(0.12, 0.24) * n
    u, v = _ellipse_coords(rng, x, y, (cx, cy), 2.2)
    bump = np.exp((u * u + v * v) * (-1 / radius**2))
    sign = 1 if rng.random() < 0.5 else -1  # bulge or dent
    k = sign * rng.uniform(0.35, 0.6)
    dx, dy = x - cx, y - cy
    # Sample the texture from displaced positions: streaks visibly bend round the bump.
    grey = _surface(rng, x - k * dx * bump, y - k * dy * bump, n)
    light = rng.uniform(0, 2 * np.pi)
    slope = (dx * math.cos(light) + dy * math.sin(light)) / radius
    shade = sign * rng.uniform(0.15, 0.28) * slope * bump  # highlight one side, shadow the other
    return _to_rgb(rng, grey + shade)


_PARTICLE_COLOURS = np.array([
    [0.05, 0.05, 0.05], [0.97, 0.97, 0.95], [0.65, 0.28, 0.08],  # black, white, rust
    [0.15, 0.3, 0.85], [0.2, 0.65, 0.25], [0.9, 0.55, 0.2], [0.85, 0.1, 0.1],
], np.float32)


def _foreign(rng: Rng, n: int) -> np.ndarray:
    x, y = _grid(n)
    rgb = _to_rgb(rng, _surface(rng, x, y, n))
    s, dot = n / 128, max(n / 128, 1)  # dots keep a minimum size so small images show them
    cluster = rng.uniform(0.15, 0.85, 2) * n
    for _ in range(int(rng.choice([1, 1, 2, 3, 4]))):
        cx, cy = (float(c) for c in np.clip(cluster + rng.normal(0, 10 * s, 2), 4 * s, n - 4 * s))
        radius = rng.uniform(1.5, 4.0) * dot
        # Work in a small window around the particle: it covers only a few pixels.
        x0, x1 = int(max(cx - 3 * radius - 4, 0)), int(min(cx + 3 * radius + 5, n))
        y0, y1 = int(max(cy - 3 * radius - 4, 0)), int(min(cy + 3 * radius + 5, n))
        dx, dy = x[y0:y1, x0:x1] - cx, y[y0:y1, x0:x1] - cy
        r = np.hypot(dx, dy)
        edge = radius * _blob_radius(rng, np.arctan2(dy, dx), 2, 0.3)
        alpha = np.clip(edge - r + 0.5, 0, 1)[..., None]  # ~1 px anti-aliased edge
        halo = np.exp(-np.maximum(r - edge, 0) / (1.2 * dot))[..., None] * 0.25  # tiny shadow
        colour = _PARTICLE_COLOURS[rng.integers(len(_PARTICLE_COLOURS))]
        win = rgb[y0:y1, x0:x1]
        rgb[y0:y1, x0:x1] = win * (1 - halo) * (1 - alpha) + colour * alpha
    return rgb


_PAINTERS: tuple[Callable[[Rng, int], np.ndarray], ...] = (
    _scratch, _stain, _missing, _deform, _foreign)


def render_surface(rng: Rng, width: int, height: int) -> np.ndarray:
    """A defect-free brushed-metal surface, ``height x width`` grey float in [0, 1]-ish."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + np.float32(0.5)
    return _surface(rng, x, y, max(width, height))


def render_defect(kind: int, image_size: int, rng: Rng) -> np.ndarray:
    """One uint8 RGB image (H, W, 3) of defect painter ``kind`` (index into DEFECT_CLASSES)."""
    rgb = _PAINTERS[kind % len(_PAINTERS)](rng, image_size)
    noise = rng.standard_normal(rgb.shape, dtype=np.float32)
    rgb += noise * rng.uniform(0.008, 0.03)  # sensor noise
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- dataset


def _split_sizes(n: int, fractions: list[float]) -> list[int]:
    """Largest-remainder rounding; every split gets at least one image when possible."""
    raw = [f * n for f in fractions]
    sizes = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda j: sizes[j] - raw[j])
    for j in by_remainder[: n - sum(sizes)]:
        sizes[j] += 1
    for j in range(len(sizes)):
        if sizes[j] == 0 and n >= len(sizes):
            sizes[int(np.argmax(sizes))] -= 1
            sizes[j] = 1
    return sizes


def _plan(root: Path, cfg: dict) -> list[tuple[Path, str, int, int]]:
    """Every file to write: (path, class name, painter index, image index)."""
    splits = cfg["splits"]
    jobs = []
    for ci, name in enumerate(cfg["classes"]):
        kind = DEFECT_CLASSES.index(name) if name in DEFECT_CLASSES else ci
        n = cfg["counts"].get(name, cfg["per_class"])
        if splits is None:
            dirs = [root / name] * n
        else:
            total = sum(splits.values())
            sizes = _split_sizes(n, [f / total for f in splits.values()])
            dirs = [root / split / name for split, k in zip(splits, sizes) for _ in range(k)]
        jobs += [(d / f"{i:04d}.png", name, kind, i) for i, d in enumerate(dirs)]
    return jobs


def make_defect_dataset(root: str | Path, *, per_class: int = 160, image_size: int = 128,
                        seed: int = 0, splits: dict[str, float] | None = None,
                        classes: Sequence[str] = DEFECT_CLASSES,
                        counts: dict[str, int] | None = None) -> Path:
    """Write a synthetic defect dataset under ``root`` and return ``Path(root)``.

    Layout is ``root/<class>/NNNN.png``, or ``root/<split>/<class>/NNNN.png``
    when ``splits`` (e.g. ``{"train": 0.7, "val": 0.15, "test": 0.15}``) is
    given; splits are stratified per class. ``counts`` overrides ``per_class``
    for individual classes. Known defect names get their own painter; other
    names cycle through the five painters by position.

    If ``root`` already holds a set made with the same arguments, nothing is
    written, so repeated demos start instantly.
    """
    root = Path(root)
    classes = list(classes)
    counts = dict(counts or {})
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be non-empty and unique, got {classes}")
    if unknown := set(counts) - set(classes):
        raise ValueError(f"counts names unknown classes: {sorted(unknown)}")
    if splits is not None and (not splits or min(splits.values()) <= 0):
        raise ValueError(f"split fractions must be positive, got {splits}")
    if per_class < 0 or min(counts.values(), default=0) < 0 or image_size < 8 or seed < 0:
        raise ValueError("per_class/counts and seed must be >= 0, image_size >= 8")

    cfg = {"version": _FORMAT_VERSION, "per_class": int(per_class), "image_size": int(image_size),
           "seed": int(seed), "classes": [str(c) for c in classes],
           "splits": None if splits is None else {str(k): float(v) for k, v in splits.items()},
           "counts": {str(k): int(v) for k, v in counts.items()}}
    marker = root / MARKER_NAME
    try:
        old = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None
    except (OSError, ValueError):
        old = None
    if old == cfg:
        return root

    jobs = _plan(root, cfg)
    marker.unlink(missing_ok=True)  # an interrupted run must not look complete
    if isinstance(old, dict):  # drop files an earlier, different set left behind
        try:
            stale = {p for p, *_ in _plan(root, old)} - {p for p, *_ in jobs}
        except (KeyError, TypeError, ValueError, AttributeError):
            stale = set()
        for path in stale:
            path.unlink(missing_ok=True)
        # Empty class folders would show up as classes without images.
        for folder in sorted({p.parent for p in stale} | {p.parent.parent for p in stale},
                             key=lambda p: len(p.parts), reverse=True):
            if folder != root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    for path, name, kind, i in jobs:
        # Child seed from (seed, class name, index): independent of generation order.
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), i])
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(render_defect(kind, image_size, rng), "RGB")
        image.save(path, format="PNG", compress_level=1)  # fast; noisy images barely compress

    marker.write_text(json.dumps(cfg, ensure_ascii=False, indent=1), encoding="utf-8")
    return root
