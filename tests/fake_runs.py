"""Run directories written in the store's format without training: for the dashboard's API tests and
bench/ui.py (200 runs, a run of 500 epochs with 50 adjustments). Real runs are made in test_e2e/test_ui_browser."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import time
from pathlib import Path

from trainpilot.config import TrainConfig
from trainpilot.tuning.messages import Msg
from trainpilot.text import recorded_notes

CLASSES = ["划痕", "污点", "异物", "ok"]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def epoch_records(epoch: int, classes: list[str], rng: random.Random, t0: float) -> list[dict]:
    acc = min(0.98, 0.3 + 0.6 * (1 - math.exp(-epoch / 20)) + rng.uniform(-0.02, 0.02))
    per_class = {c: {"precision": acc, "recall": min(1.0, max(0.0, acc + rng.uniform(-0.2, 0.1))), "f1": acc,
                     "support": 10} for c in classes}
    n = len(classes)
    cm = [[8 if i == j else (2 if j == (i + 1) % n else 0) for j in range(n)] for i in range(n)]
    ts = t0 + epoch * 2.0
    return [{"epoch": epoch, "phase": "train", "loss": 2.0 * math.exp(-epoch / 15) + 0.1, "accuracy": min(1.0, acc + 0.05),
             "lr": 1e-3 * (0.5 + 0.5 * math.cos(math.pi * epoch / 600)), "timestamp": ts - 0.5, "epoch_seconds": 1.5},
            {"epoch": epoch, "phase": "val", "loss": 2.1 * math.exp(-epoch / 15) + 0.2, "accuracy": acc, "macro_f1": acc - 0.02,
             "per_class": per_class, "confusion_matrix": cm, "class_names": classes, "timestamp": ts, "epoch_seconds": 2.0}]


def adjustment(epoch: int, status: str, adj_id: str | None = None, key: str = "learning_rate", old=1e-3, new=5e-4,
               mode: str = "auto") -> dict:
    why = Msg("reason.scheduled", {"at": epoch, "every": 2, "first": 2})
    too_big = Msg("reject.range", {"v": "4096", "range": "[1, 1024]", "src": ""})
    flat = Msg("ev.plateau", {"metric": "val_accuracy", "pct": 0.4, "w": 3, "recent": 0.8, "before": 0.797})
    rec = {"adj_id": adj_id or f"adj_{epoch:04d}_{status}", "session_id": "x", "epoch": epoch,
           "created_at": f"2026-01-01T00:{epoch // 60 % 60:02d}:{epoch % 60:02d}", "advisor": "rules", "mode": mode,
           "trigger": "scheduled", "reason_msg": why.to_dict(), "reason": why.render("en") + " Diagnosis: plateau.",
           "diagnosis": {"primary": "plateau", "states": [{"state": "plateau", "severity": 0.5,
                                                           "evidence": [flat.render("en")], "findings": [flat.to_dict()]}]},
           "analysis_text": "The run is on a plateau: halve the lr.", "raw_output": "The run is on a plateau: halve the lr.",
           "changes": [] if status == "no_change" else [{"key": key, "old": old, "new": new, "reason": "plateau",
                                                         "apply": "live", "source": "advisor"}],
           "rejected": [{"key": "batch_size", "value": 4096, "reason": too_big.render("en"), "reason_msg": too_big.to_dict()}]
           if status != "no_change" else [],
           "notes": [], "status": status, "outcome": None, "evaluate_after_epochs": 2}
    if status in ("kept", "reverted", "applied") and key == "learning_rate":
        rec.update(recorded_notes([Msg("note.peak_lr", {"lr": f"{new:g}"})], "apply_notes"))
    if status in ("kept", "reverted"):
        judged = Msg("outcome.within_noise" if status == "kept" else "outcome.below_noise", {"metric": "val_accuracy"})
        rec["outcome"] = {"decision": status, "metric": "val_accuracy", "before": 0.8, "after": 0.82 if status == "kept" else 0.7,
                          "noise_margin": 0.01, "delta": 0.02 if status == "kept" else -0.1, "evaluated_at_epoch": epoch + 2,
                          "why": judged.render("en"), "why_msg": judged.to_dict()}
    return rec


def make_run(runs_dir: Path, name: str, epochs: int = 10, adjustments: list[dict] | None = None, state: str = "completed",
             classes: list[str] | None = None, mode: str = "auto", model: str = "resnet18", seed: int = 0,
             num_epochs: int | None = None, test: tuple[float, float] = (0.91, 0.9)) -> Path:
    """A run directory as the engine writes it. ``state='running'`` marks this process as its trainer."""
    classes = classes or CLASSES
    root = Path(runs_dir) / name
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    (root / "reports").mkdir(exist_ok=True)
    rng, t0 = random.Random(seed), time.time() - 3600
    cfg = TrainConfig().to_dict()
    cfg.update(data_dir=f"/data/{name}_set", model_name=model, num_epochs=num_epochs or epochs)
    # a kept (or still applied) change is in the final config and, for the lr, in every later epoch's record
    applied = [(a["epoch"], c) for a in adjustments or [] if a["status"] in ("applied", "kept") for c in a["changes"]]
    cfg.update({c["key"]: c["new"] for _, c in applied})
    cfg["intelligent_training"]["mode"] = mode
    (root / "config.resolved.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
    (root / "run.json").write_text(json.dumps({"session_id": name, "classes": classes, "val_count": 40,
                                               "train_counts": [40 + 30 * i for i in range(len(classes))]},
                                              ensure_ascii=False), encoding="utf-8")
    records = [r for e in range(1, epochs + 1) for r in epoch_records(e, classes, rng, t0)]
    for r in (r for r in records if "lr" in r):
        r["lr"] *= math.prod(c["new"] / c["old"] for e, c in applied if c["key"] == "learning_rate" and r["epoch"] > e)
    _write_jsonl(root / "metrics.jsonl", records)
    _write_jsonl(root / "adjustments.jsonl", adjustments or [])
    status = {"state": state, "reason": "completed num_epochs" if state == "completed" else state, "epoch": epochs,
              "pid": os.getpid(), "host": socket.gethostname(), "started_at": t0, "heartbeat": time.time()}
    (root / "status.json").write_text(json.dumps(status), encoding="utf-8")
    if state == "completed":
        (root / "summary.json").write_text(json.dumps({"stop_reason": "completed num_epochs", "final": {
            "test": {"accuracy": test[0], "macro_f1": test[1], "num_images": 40}},
            "test_time_augmentation": {"used": True}, "logit_adjustment": {"tau": 0.75}}), encoding="utf-8")
        (root / "checkpoints" / "best.pt").write_bytes(b"")
    (root / "checkpoints" / "last.pt").write_bytes(b"")
    for a in adjustments or []:
        if a.get("changes"):
            stem = f"parameter_tuning_report_20260101_000000_{a['adj_id']}"
            (root / "reports" / f"{stem}.md").write_text(f"# Report\n\n| key | new |\n|---|---|\n| lr | 5e-4 |\n\n"
                                                         f"<script>alert(1)</script>\n", encoding="utf-8")
            (root / "reports" / f"{stem}.json").write_text(json.dumps(a), encoding="utf-8")
    (root / "reports" / "summary.html").write_text("<!doctype html><h1>summary</h1>", encoding="utf-8")
    return root
