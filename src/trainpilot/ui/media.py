"""Images for the dashboard: the dataset preview and Predict. Only image files are opened (by suffix,
then by decoding); thumbnails travel inside the response as data URLs, so no route serves a path."""

from __future__ import annotations

import tempfile
from pathlib import Path

from trainpilot.config import build_config
from trainpilot.data.folder import IMAGE_SUFFIXES, scan_dataset
from trainpilot.data.thumbs import thumbnail
from trainpilot.ui import forms
from trainpilot.ui.security import Forbidden

THUMBS_PER_CLASS = 4
MAX_PREDICT = 200
BROKEN_CHECK_LIMIT = 3000  # a header check of every file in a preview; beyond this it waits for training


def preview_dataset(data_dir: str, values: dict) -> dict:
    """Class counts per split, a few thumbnails per class, the files training will skip, and what the
    automatic recipe would choose for the keys the form leaves unset."""
    from trainpilot.data.images import find_broken
    from trainpilot.data.profile import describe, profile_dataset
    from trainpilot.recipe import choose

    if not data_dir.strip():
        raise ValueError("give a dataset folder: train/ and val/ class folders, or flat class folders")
    wrong = forms.validate(values)  # a field still being typed does not block the preview
    values = {k: v for k, v in values.items() if k not in wrong}
    cfg = build_config({**forms._nest(values), "data_dir": data_dir})
    index = scan_dataset(Path(data_dir).expanduser(), cfg.val_split, cfg.seed)
    skipped = [{"path": p, "why": why} for p, why in index.skipped]
    splits = [s for s in ("train", "val", "test") if getattr(index, s) is not None]
    if sum(len(getattr(index, s)) for s in splits) <= BROKEN_CHECK_LIMIT:
        for s in splits:
            split = getattr(index, s)
            skipped += [{"path": str(split.paths[i]), "why": why} for i, why in sorted(find_broken(split).items())]
    counts = {s: index.counts(s) for s in splits}
    classes = []
    for label, name in enumerate(index.classes):
        files = [p for p, y in zip(index.train.paths, index.train.labels) if y == label]
        thumbs = [t for t in (thumbnail(p) for p in files[:THUMBS_PER_CLASS]) if t]
        classes.append({"name": name, "counts": {s: counts[s][label] for s in splits}, "thumbs": thumbs})
    profile = profile_dataset(index)
    choices = [c.to_dict() for c in choose(cfg, profile, set(values))]
    return {"root": str(index.root), "layout": index.layout, "classes": classes, "splits": splits,
            "skipped": skipped[:200], "skipped_total": len(skipped), "profile": describe(profile), "recipe": choices}


def _inputs(folder: str, uploads: list[tuple[str, bytes]], tmp: Path) -> list[Path]:
    from trainpilot.inference import collect_images

    paths: list[Path] = []
    for i, (name, data) in enumerate(uploads):
        suffix = Path(name).suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            raise ValueError(f"'{name}' is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
        path = tmp / f"{i:04d}_{Path(name).stem[:60]}{suffix}"
        path.write_bytes(data)
        paths.append(path)
    if folder.strip():
        p = Path(folder.strip()).expanduser()
        if p.is_dir():
            paths += collect_images([p])  # image suffixes only
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            paths.append(p)
        else:
            raise ValueError(f"'{p}' is not a folder or an image file on the server")
    if not paths:
        raise ValueError("no images: drop image files, or give a folder that holds images")
    if len(paths) > MAX_PREDICT:
        raise ValueError(f"{len(paths)} images; the dashboard predicts up to {MAX_PREDICT} at a time "
                         f"(use `trainpilot predict RUN FOLDER --csv out.csv` for more)")
    return paths


def predict_images(state, run, checkpoint: str, uploads: list[tuple[str, bytes]], folder: str, top_k: int) -> dict:
    """Top-k predictions with a thumbnail for each image, from the run's chosen checkpoint."""
    from trainpilot.inference import load_trained, predict

    ckpts = run.checkpoints
    if checkpoint not in ckpts:
        raise Forbidden(f"run '{run.id}' has no checkpoint '{checkpoint}'; it has: {', '.join(ckpts) or 'none'}")
    if not 1 <= top_k <= 20:
        raise ValueError(f"top-k {top_k} must be between 1 and 20")
    path = ckpts[checkpoint]
    trained = state.model((run.id, checkpoint, path.stat().st_mtime_ns), lambda: load_trained(path))
    with tempfile.TemporaryDirectory(prefix="trainpilot-ui-") as tmp:
        paths = _inputs(folder, uploads, Path(tmp))
        names = {str(p): (p.name.split("_", 1)[1] if str(p).startswith(tmp) else str(p)) for p in paths}
        rows = predict(trained, paths, top_k=top_k)
        for row in rows:
            row["thumb"] = thumbnail(Path(row["path"]))
            row["path"] = names.get(row["path"], row["path"])
    return {"run": run.id, "checkpoint": checkpoint, "classes": trained.class_names, "predictions": rows}
