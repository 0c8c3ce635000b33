"""Experience memory: what worked on which data, kept across studies.

One JSON file holds one entry per dataset (by its folder): the dataset's meta-features (images,
classes, imbalance, sizes, grayscale), the best configs found on it, and the tuning controller's
outcomes (diagnosis -> change -> kept/reverted) in its trials. Every study keeps its own file in its
folder; a user-level file (``~/.trainpilot/memory.json`` by default) gathers all of them, so a new
study warm-starts from the nearest earlier datasets (their best configs are its first trials).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

from trainpilot.data.profile import DataProfile
from trainpilot.engine.rundir import write_json_atomic

USER_MEMORY = Path(os.environ.get("TRAINPILOT_MEMORY", "~/.trainpilot/memory.json")).expanduser()
KEEP_BEST = 5
MAX_DISTANCE = 2.0  # meta-feature distance beyond which another dataset says little about this one


def meta_features(p: DataProfile) -> dict[str, float]:
    return {"images": p.images, "classes": len(p.classes), "imbalance": round(p.imbalance_ratio, 3),
            "median_side": round(math.sqrt(p.median_width * p.median_height), 1),
            "aspect": round(p.median_aspect, 3), "grayscale": float(p.grayscale)}


def _vector(m: dict[str, float]) -> list[float]:
    # log scales: 100 vs 1,000 images differ as much as 1,000 vs 10,000
    return [math.log10(max(1.0, m["images"])), math.log2(max(2.0, m["classes"])) / 2,
            math.log10(max(1.0, m["imbalance"])), math.log2(max(8.0, m["median_side"])) / 2,
            math.log2(max(1.0, m.get("aspect", 1.0))), m.get("grayscale", 0.0)]


def distance(a: dict[str, float], b: dict[str, float]) -> float:
    return math.dist(_vector(a), _vector(b))


class Memory:
    def __init__(self, path: Path):
        self.path = Path(path).expanduser()

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) and isinstance(data.get("datasets"), dict) else {"datasets": {}}
        except (OSError, ValueError):
            return {"datasets": {}}

    def record(self, dataset: str, features: dict[str, float], params: dict[str, Any] | None, value: float | None,
               outcomes: list[dict]) -> None:
        """Add one finished trial: its params and value (kept when among the best) and its outcomes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=60):
            data = self.load()
            entry = data["datasets"].setdefault(dataset, {"features": features, "best": [], "outcomes": {}})
            entry["features"] = features
            if params is not None and value is not None and math.isfinite(value):
                best = [b for b in entry["best"] if b["params"] != params] + [{"params": params, "value": value}]
                entry["best"] = sorted(best, key=lambda b: -b["value"])[:KEEP_BEST]
            for o in outcomes:
                key = f"{o['diagnosis']}|{o['key']}|{o['direction']}"
                counts = entry["outcomes"].setdefault(key, {"kept": 0, "reverted": 0})
                if o["status"] in counts:
                    counts[o["status"]] += 1
            write_json_atomic(self.path, data)

    def nearest(self, features: dict[str, float], exclude: str, k: int = 2) -> list[tuple[str, float, dict]]:
        """Up to ``k`` other datasets within :data:`MAX_DISTANCE`, nearest first: (name, distance, entry)."""
        found = [(name, distance(features, e["features"]), e) for name, e in self.load()["datasets"].items()
                 if name != exclude and e.get("best") and isinstance(e.get("features"), dict)]
        return sorted([f for f in found if f[1] <= MAX_DISTANCE], key=lambda f: f[1])[:k]

    def priors(self) -> dict[str, dict[str, int]]:
        """diagnosis|key|direction -> {kept, reverted}, summed over every dataset."""
        out: dict[str, dict[str, int]] = {}
        for e in self.load()["datasets"].values():
            for key, c in (e.get("outcomes") or {}).items():
                acc = out.setdefault(key, {"kept": 0, "reverted": 0})
                acc["kept"] += int(c.get("kept", 0))
                acc["reverted"] += int(c.get("reverted", 0))
        return out


def warm_start_params(memories: list[Memory], features: dict[str, float], dataset: str, per_dataset: int = 2) -> list[tuple[str, dict]]:
    """(source dataset, params) of the best configs of the nearest earlier datasets, best first."""
    out, seen = [], []
    for mem in memories:
        for name, _, entry in mem.nearest(features, exclude=dataset):
            for b in entry["best"][:per_dataset]:
                if b["params"] not in seen:
                    seen.append(b["params"])
                    out.append((name, b["params"]))
    return out
