"""Use a trained run: load its checkpoint, evaluate it on a labelled folder, predict and sort new images.

Only :func:`sort_into` and :func:`write_predictions_csv` write files. A user's mistake (not a run
folder, a foreign checkpoint, class folders that differ from the model's) raises :class:`InferenceError`
with one line naming the path and the fix; an unreadable image is reported per file instead.
"""

from __future__ import annotations

import csv
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from trainpilot.config import ConfigError, build_config
from trainpilot.data.augment import BatchAugment
from trainpilot.data.folder import IMAGE_SUFFIXES, SPLIT_NAMES
from trainpilot.data.images import Geometry
from trainpilot.data.images import _try_decode as _decode  # RGB uint8 array, or why it cannot be decoded
from trainpilot.engine.checkpoint import CheckpointError, load_checkpoint
from trainpilot.engine.metrics import confusion_matrix, summarize
from trainpilot.engine.state import FORMAT as CHECKPOINT_FORMAT

UNCERTAIN = "_uncertain"
THREADS = max(1, min(4, os.cpu_count() or 1))  # PIL releases the GIL while decoding


class InferenceError(ValueError):
    """A problem the user can fix (wrong folder, unreadable checkpoint, class mismatch); one line."""


@dataclass
class Trained:
    """A trained model in eval mode, with what is needed to feed it."""
    model: nn.Module
    class_names: list[str]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    config: dict
    checkpoint: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    meta: dict = field(default_factory=dict)  # session_id, epoch, source, monitor, value, model_info, model_note,
    # logit_adjustment (see trainpilot.priors)

    @property
    def resize_mode(self) -> str:
        """How the run fitted images to the input (older runs: squash)."""
        return str(self.config.get("resize_mode", "squash"))

    @property
    def geometry(self) -> Geometry:
        """The input the model was trained on (older runs: an image_size square, no rotation)."""
        return Geometry.of({**self.config, "image_size": self.image_size})


def _checkpoint_path(source: str | Path, which: str) -> Path:
    if which not in ("best", "last"):
        raise InferenceError(f"which={which!r} is not a checkpoint name; use 'best' or 'last'")
    path = Path(source).expanduser()
    if not path.exists():
        raise InferenceError(f"'{path}' does not exist; give a run directory (runs/<id>) or a checkpoint .pt file")
    if path.is_file():
        return path
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if folder is path and not any((path / f"{n}.pt").is_file() for n in ("best", "last")):
        raise InferenceError(f"'{path}' is not a trainpilot run directory (no checkpoints/ folder); "
                             f"give runs/<id> or a checkpoint .pt file")
    ckpt, other = folder / f"{which}.pt", "last" if which == "best" else "best"
    if not ckpt.is_file():
        hint = f"load '{other}' instead" if (folder / f"{other}.pt").is_file() else "the run has saved no checkpoint yet"
        raise InferenceError(f"'{ckpt}' does not exist; {hint}")
    return ckpt


def _read_checkpoint(path: Path) -> dict:
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        raise InferenceError(str(err)) from None
    except Exception as err:  # torch.load raises many types for a file that is not a checkpoint
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise InferenceError(f"cannot read '{path}' as a PyTorch checkpoint ({first}); "
                             f"give a best.pt/last.pt written by trainpilot") from None
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in ("model", "class_names", "config")) \
            or not isinstance(ckpt["model"], dict):
        raise InferenceError(f"'{path}' is not a trainpilot checkpoint (no model/class_names/config); "
                             f"give runs/<id>/checkpoints/best.pt or last.pt")
    if int(ckpt.get("format", 1)) > CHECKPOINT_FORMAT:
        raise InferenceError(f"'{path}' was written by a newer trainpilot (format {ckpt['format']}); upgrade trainpilot")
    return ckpt


def _pick_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if str(device) == "auto" else device)
    except (RuntimeError, TypeError):
        raise InferenceError(f"device {device!r} is not valid; use auto, cpu, cuda or cuda:N") from None


def load_trained(run_dir_or_checkpoint: str | Path, which: str = "best", device: str | torch.device = "cpu",
                 flips: bool = True) -> Trained:
    """Rebuild the model of a run directory (or a .pt file) and load its ``which`` weights, in eval mode, with
    what the checkpoint adds to its scores (test-time flips unless ``flips`` is false, the class-prior bias)."""
    from trainpilot.models import build_model  # timm is imported only when a model is needed

    path = _checkpoint_path(run_dir_or_checkpoint, which)
    ckpt = _read_checkpoint(path)
    class_names = [str(c) for c in ckpt["class_names"]]
    try:
        cfg = build_config({**ckpt["config"], "use_pretrained": False, "pretrained_path": ""})
        with torch.random.fork_rng(devices=[]):  # random init must not disturb the caller's seeds
            model, info = build_model(cfg, len(class_names))
    except ConfigError as err:
        raise InferenceError(f"checkpoint '{path}' cannot be rebuilt here: {err}") from None
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InferenceError(f"the weights in '{path}' do not fit {info['timm_name']} with {len(class_names)} classes "
                             f"({str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err})") from None
    dev = _pick_device(device)
    bias = ckpt.get("logit_bias")
    if bias is not None and not (isinstance(bias, torch.Tensor) and bias.numel() == len(class_names)):
        raise InferenceError(f"'{path}' holds a logit_bias that does not match its {len(class_names)} classes; "
                             f"it is damaged or not written by trainpilot")
    if flips and (ckpt.get("tta") or {}).get("used"):
        from trainpilot.tta import FlipAveraged

        model = FlipAveraged(model)
    if bias is not None and bool(bias.abs().sum() > 0):
        from trainpilot.priors import AdjustedLogits

        model = AdjustedLogits(model, bias)
    model = model.to(dev, memory_format=torch.channels_last).eval()
    model_info = ckpt.get("model_info") or info
    meta = {k: ckpt.get(k) for k in ("session_id", "epoch", "source", "monitor", "value", "model_note",
                                     "logit_adjustment", "tta")}
    meta.update(model_info=model_info)
    return Trained(model=model, class_names=class_names, image_size=int(ckpt.get("image_size") or cfg.image_size),
                   mean=tuple(model_info.get("mean", info["mean"])), std=tuple(model_info.get("std", info["std"])),
                   config=dict(ckpt["config"]), checkpoint=path, device=dev, meta=meta)


def _to_input(arrays: list[np.ndarray], trained: Trained) -> torch.Tensor:
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(trained.device)
    x = BatchAugment(trained.mean, trained.std, enabled=False).normalize(batch)
    return x.contiguous(memory_format=torch.channels_last)


def preprocess(paths: Iterable[str | Path], trained: Trained) -> torch.Tensor:
    """Decode and normalise images into one ``N x 3 x H x W`` float32 channels_last batch on the model's device."""
    paths = [Path(p) for p in paths]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        arrays = list(pool.map(lambda p: _decode(p, trained.geometry), paths))
    for p, a in zip(paths, arrays):
        if isinstance(a, str):
            raise InferenceError(f"image '{p}' {a}; remove or replace the file")
    if not arrays:
        return torch.empty(0, 3, trained.geometry.height, trained.geometry.width, device=trained.device)
    return _to_input(arrays, trained)


def _probabilities(trained: Trained, paths: list[Path], batch_size: int) -> tuple[list[int], torch.Tensor, dict[int, str]]:
    """Softmax probabilities (CPU) of every decodable path in order, their indices, and errors by index."""
    if batch_size < 1:
        raise InferenceError(f"batch_size={batch_size} must be at least 1")
    good, chunks, errors = [], [], {}
    with ThreadPoolExecutor(max_workers=THREADS) as pool, torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            arrays = list(pool.map(lambda p: _decode(p, trained.geometry), paths[start:start + batch_size]))
            errors.update({start + i: a for i, a in enumerate(arrays) if isinstance(a, str)})
            ok = [a for a in arrays if not isinstance(a, str)]
            good += [start + i for i, a in enumerate(arrays) if not isinstance(a, str)]
            if ok:
                logits = trained.model(_to_input(ok, trained)).float()
                chunks.append(torch.softmax(logits, dim=1).cpu())
    probs = torch.cat(chunks) if chunks else torch.empty(0, len(trained.class_names))
    return good, probs, errors


def _labelled_files(folder: Path, classes: list[str]) -> tuple[list[Path], list[int], list[dict]]:
    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if found != sorted(classes):
        if found and set(found) <= set(SPLIT_NAMES):
            raise InferenceError(f"'{folder}' holds split folders ({', '.join(found)}), not class folders; "
                                 f"choose one of them as the split")
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        raise InferenceError(f"class folders in '{folder}' do not match the model's classes: missing {missing}, "
                             f"extra {extra}; use the model's class folder names (an empty folder is fine)")
    paths, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        for p in sorted(f for f in (folder / name).rglob("*") if f.is_file() and not f.name.startswith(".")):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append({"path": str(p), "why": "not an image file (unknown extension)"})
            else:
                paths.append(p)
                labels.append(label)
    return paths, labels, skipped


def evaluate_split(trained: Trained, data_dir: str | Path, split: str = "test", batch_size: int = 64) -> dict:
    """Accuracy, macro-F1/precision/recall, a per-class table and the confusion matrix on
    ``data_dir/<split>/<class>/*`` (``split="all"``: ``data_dir/<class>/*``). For flat class folders,
    ``split="val"`` / ``"train"`` rebuild the run's seeded split from its ``val_split`` and ``seed``.
    Unreadable files are skipped and listed under ``skipped``; the most confident mistakes come first
    in ``misclassified``."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise InferenceError(f"dataset folder '{root}' does not exist or is not a folder")
    folder = root if split == "all" else root / split
    if split in ("train", "val") and not any((root / s).is_dir() for s in SPLIT_NAMES):  # flat class folders
        return _evaluate_seeded_split(trained, root, split, batch_size)
    if not folder.is_dir():
        present = [s for s in SPLIT_NAMES if (root / s).is_dir()]
        hint = f"use one of: {', '.join(present)}" if present else "use split 'all', 'val' or 'train' for flat class folders"
        raise InferenceError(f"'{folder}' does not exist; {hint}")
    paths, labels, skipped = _labelled_files(folder, trained.class_names)
    if not paths:
        raise InferenceError(f"no images found under '{folder}'; put images in its class folders")
    return evaluate_files(trained, paths, labels, split, folder, batch_size, skipped)


def _evaluate_seeded_split(trained: Trained, root: Path, split: str, batch_size: int) -> dict:
    from trainpilot.data.folder import DatasetError, scan_dataset

    cfg = trained.config
    try:
        index = scan_dataset(root, float(cfg.get("val_split", 0.2)), int(cfg.get("seed", 42)))
    except DatasetError as err:
        raise InferenceError(str(err)) from None
    if sorted(index.classes) != sorted(trained.class_names):
        raise InferenceError(f"class folders in '{root}' do not match the model's classes {trained.class_names}")
    part = getattr(index, split)
    remap = [trained.class_names.index(c) for c in index.classes]
    skipped = [{"path": p, "why": why} for p, why in index.skipped]
    return evaluate_files(trained, list(part.paths), [remap[i] for i in part.labels], split, root, batch_size, skipped)


def evaluate_files(trained: Trained, paths: list[Path], labels: list[int], split: str, where: Path,
                   batch_size: int = 64, skipped: list[dict] | None = None) -> dict:
    """The evaluation of :func:`evaluate_split` on given files and label indices (the model's class order)."""
    classes, skipped = trained.class_names, list(skipped or [])
    good, probs, errors = _probabilities(trained, paths, batch_size)
    skipped += [{"path": str(paths[i]), "why": why} for i, why in sorted(errors.items())]
    if not good:
        raise InferenceError(f"none of the {len(paths)} images under '{where}' could be decoded")
    targets = torch.tensor([labels[i] for i in good], dtype=torch.long)
    conf, preds = probs.max(dim=1)
    result = summarize(confusion_matrix(preds, targets, len(classes)), classes)
    wrong = [{"path": str(paths[i]), "true": classes[labels[i]], "predicted": classes[int(preds[j])],
              "prob": round(float(conf[j]), 6)} for j, i in enumerate(good) if int(preds[j]) != labels[i]]
    wrong.sort(key=lambda r: -r["prob"])
    return {"split": split, "data_dir": str(where), "checkpoint": str(trained.checkpoint), "class_names": list(classes),
            "num_images": len(good), "num_skipped": len(skipped), "skipped": skipped, **result,
            "confusion_matrix_normalized": normalized(result["confusion_matrix"]), "misclassified": wrong}


def normalized(cm: list[list[int]]) -> list[list[float]]:
    """Each row of a confusion matrix divided by its sum (the recall view); an empty row stays 0."""
    return [[round(c / sum(row), 6) if sum(row) else 0.0 for c in row] for row in cm]


def collect_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for image suffixes; order kept, duplicates dropped."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            out += [f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)]
        elif p.exists():
            out.append(p)
        else:
            raise InferenceError(f"'{p}' does not exist; give image files or folders of images")
    return list(dict.fromkeys(out))


def predict(trained: Trained, inputs: Iterable[str | Path], top_k: int = 3, batch_size: int = 64) -> list[dict]:
    """One dict per image: ``path``, ``label``/``prob`` (top-1) and ``top`` (``[{label, prob}]``, best first),
    or ``path`` and ``error`` for a file that cannot be decoded."""
    if top_k < 1:
        raise InferenceError(f"top_k={top_k} must be at least 1")
    paths = collect_images(inputs)
    if not paths:
        raise InferenceError(f"no images found in the given inputs; image suffixes: {', '.join(sorted(IMAGE_SUFFIXES))}")
    good, probs, errors = _probabilities(trained, paths, batch_size)
    k = min(top_k, len(trained.class_names))
    values, indices = probs.topk(k, dim=1)
    rows = {i: [{"label": trained.class_names[int(c)], "prob": float(v)} for v, c in zip(values[j], indices[j])]
            for j, i in enumerate(good)}
    return [{"path": str(p), "error": errors[i]} if i in errors else
            {"path": str(p), "label": rows[i][0]["label"], "prob": rows[i][0]["prob"], "top": rows[i]}
            for i, p in enumerate(paths)]


def _copy_new(src: Path, folder: Path) -> Path:
    """Copy ``src`` into ``folder`` under a name that does not exist yet (name_1.ext, name_2.ext, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        dst = folder / (src.name if n == 0 else f"{src.stem}_{n}{src.suffix}")
        try:
            with open(src, "rb") as fin, open(dst, "xb") as fout:  # "x": never replaces an existing file
                shutil.copyfileobj(fin, fout)
        except FileExistsError:
            n += 1
            continue
        shutil.copystat(src, dst)
        return dst


def sort_into(predictions: list[dict], dest_dir: str | Path, threshold: float) -> dict:
    """Copy each predicted file into ``dest_dir/<label>/`` when its top-1 probability is at least
    ``threshold``, else into ``dest_dir/_uncertain/``. Existing files are never overwritten."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise InferenceError(f"threshold={threshold} must be between 0 and 1, e.g. 0.8")
    dest = Path(dest_dir).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InferenceError(f"cannot create the folder '{dest}' ({err.strerror or err}); give a writable folder") from None
    per_folder: dict[str, int] = {}
    copies, skipped = [], []
    for pred in predictions:
        if "error" in pred:
            skipped.append({"path": pred["path"], "why": pred["error"]})
            continue
        folder = pred["label"] if pred["prob"] >= threshold else UNCERTAIN
        try:
            dst = _copy_new(Path(pred["path"]), dest / folder)
        except OSError as err:
            skipped.append({"path": pred["path"], "why": f"cannot be copied ({err.strerror or err})"})
            continue
        per_folder[folder] = per_folder.get(folder, 0) + 1
        copies.append({"src": pred["path"], "dst": str(dst), "folder": folder})
    return {"dest_dir": str(dest), "threshold": float(threshold), "copied": len(copies),
            "uncertain": per_folder.get(UNCERTAIN, 0), "per_folder": per_folder,
            "skipped": len(skipped), "skipped_files": skipped, "copies": copies}


def write_predictions_csv(predictions: list[dict], path: str | Path) -> Path:
    """CSV with columns path, top1, prob1, ..., topK, probK, error (UTF-8 with BOM, so Excel shows CJK names)."""
    path = Path(path).expanduser()
    k = max((len(p.get("top", [])) for p in predictions), default=1) or 1
    rows = [["path"] + [c for i in range(1, k + 1) for c in (f"top{i}", f"prob{i}")] + ["error"]]
    for p in predictions:
        top = p.get("top", [])
        cells = [x for i in range(k) for x in ((top[i]["label"], f"{top[i]['prob']:.6f}") if i < len(top) else ("", ""))]
        rows.append([p["path"], *cells, p.get("error", "")])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            csv.writer(f).writerows(rows)
    except OSError as err:
        raise InferenceError(f"cannot write '{path}' ({err.strerror or err}); give a writable file path") from None
    return path
