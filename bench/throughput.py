"""Training throughput: trainpilot vs a plain idiomatic PyTorch loop vs the compute-only ceiling.

All three are measured in this one process, one after the other, on the same data
(../shared/datasets/neu-cls), model (mobilenetv3_small_100), image size (128) and batch size (32).

    .venv/bin/python bench/throughput.py [--epochs 4] [--data ../shared/datasets/neu-cls]

Steady-state images/s excludes the first epoch (warm-up, caches, allocator).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

ROOT = Path(__file__).resolve().parents[1]
MODEL, SIZE, BATCH = "mobilenetv3_small_100", 128, 32


def plain_loop(data: Path, epochs: int, seed: int = 0, test: bool = False, max_minutes: float = 0.0) -> dict:
    """The loop most people write: ImageFolder + RandomResizedCrop/flip + DataLoader(2 workers) + AdamW + cosine.

    ``test`` also scores the final weights on ``data/test`` (accuracy and macro-F1); ``max_minutes`` stops
    after the epoch that crosses that wall-clock budget.
    """
    torch.manual_seed(seed)
    began = time.perf_counter()
    norm = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    train_tf = transforms.Compose([transforms.RandomResizedCrop(SIZE), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), norm])
    val_tf = transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.ToTensor(), norm])
    train_ds = datasets.ImageFolder(data / "train", train_tf)
    val_ds = datasets.ImageFolder(data / "val", val_tf)
    train_dl = DataLoader(train_ds, batch_size=BATCH, shuffle=True, num_workers=2, drop_last=True,
                          persistent_workers=True)
    val_dl = DataLoader(val_ds, batch_size=64, num_workers=2)
    model = timm.create_model(MODEL, num_classes=len(train_ds.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    speeds = []
    for _ in range(epochs):
        model.train()
        seen, start = 0, time.perf_counter()
        for x, y in train_dl:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        speeds.append(seen / (time.perf_counter() - start))
        sched.step()
        if max_minutes and time.perf_counter() - began > max_minutes * 60:
            break
    out = {"images_per_s": statistics.median(speeds[1:] or speeds), "epochs": len(speeds),
           "val_accuracy": _score(model, val_dl, len(train_ds.classes))["accuracy"]}
    if test:
        test_dl = DataLoader(datasets.ImageFolder(data / "test", val_tf), batch_size=64, num_workers=2)
        scores = _score(model, test_dl, len(train_ds.classes))
        out.update(test_accuracy=scores["accuracy"], test_macro_f1=scores["macro_f1"])
    return out


def _score(model, loader, k: int) -> dict:
    from trainpilot.engine.metrics import confusion_matrix, summarize

    model.eval()
    cm = torch.zeros(k, k, dtype=torch.long)
    with torch.inference_mode():
        for x, y in loader:
            cm += confusion_matrix(model(x).argmax(1), y, k)
    return summarize(cm, [str(i) for i in range(k)])


def trainpilot_run(data: Path, epochs: int) -> dict:
    import trainpilot

    with tempfile.TemporaryDirectory() as runs:
        run = trainpilot.train({"data_dir": str(data), "model_name": MODEL, "image_size": SIZE, "batch_size": BATCH,
                                "num_epochs": epochs, "use_tensorboard": False, "early_stopping": False},
                               runs_dir=runs, quiet=True)
        train = [r for r in run.history if r["phase"] == "train"]
        val = [r for r in run.history if r["phase"] == "val"]
        return {"images_per_s": statistics.median(r["images_per_s"] for r in train[1:]),
                "val_accuracy": val[-1]["accuracy"]}


def compute_ceiling(steps: int = 30) -> dict:
    """Forward + backward + AdamW step on random tensors already in memory (channels_last, as trainpilot runs)."""
    torch.manual_seed(0)
    model = timm.create_model(MODEL, num_classes=6).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 6, (BATCH,))
    for i in range(steps + 5):
        if i == 5:
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {"images_per_s": steps * BATCH / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "neu-cls")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {MODEL} @ {SIZE}px, batch {BATCH}, "
          f"{args.epochs} epochs each", flush=True)
    # the ceiling is measured before, between and after the two trainers (median), so that a noisy
    # neighbour on a shared machine moves all three numbers alike
    ceilings = [compute_ceiling()["images_per_s"]]
    plain = plain_loop(args.data, args.epochs)
    ceilings.append(compute_ceiling()["images_per_s"])
    ours = trainpilot_run(args.data, args.epochs)
    ceilings.append(compute_ceiling()["images_per_s"])
    ceiling = {"images_per_s": statistics.median(ceilings), "all": ceilings}
    rows = [("compute-only ceiling", ceiling, None), ("plain PyTorch loop", plain, plain["val_accuracy"]),
            ("trainpilot", ours, ours["val_accuracy"])]
    print("\n| trainer | train img/s | vs plain loop | of ceiling | val acc |\n|---|---|---|---|---|")
    for name, r, acc in rows:
        print(f"| {name} | {r['images_per_s']:.0f} | {r['images_per_s'] / plain['images_per_s']:.2f}x | "
              f"{r['images_per_s'] / ceiling['images_per_s']:.0%} | {'' if acc is None else f'{acc:.3f}'} |")
    print(json.dumps({"ceiling": ceiling, "plain": plain, "trainpilot": ours}))


if __name__ == "__main__":
    main()
