"""Training images whose label the finished model confidently contradicts (confident learning).

After training, ``best.pt`` scores every training image in one view (no augmentation, no test-time flips:
the training split is the largest, and one view is what the list's precision was measured with). Each class
gets a threshold of its own: the model's mean probability for that class over the images filed under it
(its self-confidence there; Northcutt et al., "Confident Learning", 2021). An image filed under class
``i`` is a suspect when, among the classes whose probability reaches their own threshold, the most
probable is another class ``j``: the model is as sure it is a ``j`` as it usually is of its real ``j``
images. Per-class thresholds read the data: a class the model finds hard gets a lower bar, so its images
are not all flagged, and an easy class a higher one.

The list goes to ``reports/suspect_labels.csv``, most doubtful first (lowest probability for the given
label), for a person to look at: nothing is moved or relabelled. A model that has memorised its training
labels (a long run, far past the point where val stops improving) agrees with the wrong ones too, so the
list then under-reports; it never flags an image the model has not learned to contradict. A model that
contradicts over a third of its training labels has not learned the classes (too few epochs, a broken
run): the record says so (``weak_model``), and the CLI and summary.html warn that the list means little.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import torch

WEAK_SHARE = 1 / 3  # a model that contradicts more of its own training labels has not learned the classes yet


def confident_suspects(probs: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, int]]:
    """``(index, suggested class)`` of every image whose given label is contradicted (see the module)."""
    k = probs.shape[1]
    thresholds = torch.full((k,), float("inf"), dtype=probs.dtype)
    for c in range(k):
        own = probs[labels == c, c]
        if len(own):
            thresholds[c] = own.mean()
    above = probs >= thresholds  # (n, k): classes the model is as sure of as it is of their own images
    masked = torch.where(above, probs, torch.full_like(probs, -1.0))
    best = masked.argmax(1)
    hit = above.any(1) & (best != labels)
    return [(int(i), int(best[i])) for i in torch.nonzero(hit).flatten()]


def write_suspect_labels(run_root: Path, data_index, device, batch_size: int) -> dict | None:
    """Score the training split with ``best.pt`` and write ``reports/suspect_labels.csv``; returns the
    summary record (``count``, ``share``, ``file``, ``by_class``), or None without best.pt or training images."""
    from trainpilot.inference import _probabilities, load_trained

    best = Path(run_root) / "checkpoints" / "best.pt"
    if not best.exists() or not len(data_index.train):
        return None
    trained = load_trained(run_root, "best", device=device, flips=False)  # one view: a quarter of the cost
    remap = [trained.class_names.index(c) for c in data_index.classes]
    paths = list(data_index.train.paths)
    good, probs, _ = _probabilities(trained, paths, batch_size)
    labels = torch.tensor([remap[data_index.train.labels[i]] for i in good], dtype=torch.long)
    found = confident_suspects(probs.double(), labels)
    found.sort(key=lambda t: float(probs[t[0], labels[t[0]]]))
    names, root = trained.class_names, Path(data_index.root)
    out = Path(run_root) / "reports" / "suspect_labels.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8-sig", newline="") as f:  # BOM: Excel shows CJK class names
        w = csv.writer(f)
        w.writerow(["file", "label", "suggested", "p_label", "p_suggested"])
        for i, j in found:
            path, y = paths[good[i]], int(labels[i])
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            w.writerow([str(shown), names[y], names[j], f"{float(probs[i, y]):.4f}", f"{float(probs[i, j]):.4f}"])
    by_class = Counter(names[int(labels[i])] for i, _ in found)
    share = len(found) / max(1, len(good))
    return {"count": len(found), "share": round(share, 4), "images": len(good),
            "file": str(out.relative_to(run_root)), "by_class": dict(by_class), "weak_model": share > WEAK_SHARE}
