"""The CLI's shortcuts, --version, models, evaluate on flat folders, and a finished run's final evaluation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import TINY
from trainpilot.runs import Run


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "trainpilot", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_version_and_models():
    from trainpilot import __version__

    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"trainpilot {__version__}"
    models = cli("models", "mobilenetv3_small")
    assert models.returncode == 0, models.stderr
    assert "mobilenetv3_small_050" in models.stdout and "mobilenetv3small" in models.stdout  # timm name, seed alias
    none = cli("models", "no_such_model_zz")
    assert none.returncode == 2 and none.stderr.startswith("error: no model matches")


def test_a_finished_run_is_evaluated_on_its_best_weights(tiny_run, tiny_data):
    run = Run.open(tiny_run.dir)
    final = tiny_run.summary["final"]
    assert set(final) == {"val", "test"} and final["val"]["epoch"] == tiny_run.summary["best_epoch"]
    val = run.evaluations["val"]
    assert val["checkpoint"].endswith("best.pt") and val["num_images"] == sum(1 for _ in (tiny_data / "val").rglob("*.png"))
    assert all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in val["confusion_matrix_normalized"] if any(row))
    assert sum(map(sum, val["confusion_matrix"])) == val["num_images"]
    for name in ("per_class_val.csv", "per_class_test.csv", "confusion_matrix_val.png", "summary.html"):
        assert (tiny_run.dir / "reports" / name).exists(), name
    assert run.status.state == "completed"


def test_train_shortcuts_name_and_evaluate_val_on_flat_folders(tmp_path):
    from trainpilot.data.synthetic import make_defect_dataset

    data = make_defect_dataset(tmp_path / "flat", per_class=10, image_size=40, seed=3, classes=("a", "b"))
    rest = {k: v for k, v in TINY.items() if k not in ("model_name", "image_size", "batch_size", "num_epochs")}
    sets = [a for k, v in rest.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    result = cli("train", "--data", data, "--model", "mobilenetv3_small_050", "--epochs", 1, "--img-size", 32,
                 "--batch-size", 4, "--lr", 0.001, "--device", "cpu", "--no-pretrained", "--name", "short",
                 "--runs-dir", tmp_path / "runs", "--quiet", *sets)
    assert result.returncode == 0, result.stderr
    run = Run.open(tmp_path / "runs" / "short")
    cfg = run.config
    assert (cfg["model_name"], cfg["num_epochs"], cfg["image_size"], cfg["batch_size"], cfg["learning_rate"],
            cfg["device"], cfg["use_pretrained"]) == ("mobilenetv3_small_050", 1, 32, 4, 0.001, "cpu", False)
    ev = cli("evaluate", run.root, "--split", "val", "--device", "cpu", "--batch-size", 3)
    assert ev.returncode == 0, ev.stderr
    got = json.loads((run.root / "reports" / "evaluation_val.json").read_text())
    assert got["num_images"] == run.val_count  # the run's own seeded val split, rebuilt
    assert got["accuracy"] == pytest.approx(run.summary["final"]["val"]["accuracy"])
    again = cli("train", "--data", data, "--name", "short", "--runs-dir", tmp_path / "runs", "--quiet",
                "--epochs", 1, "--model", "mobilenetv3_small_050", "--img-size", 32, *sets)
    assert again.returncode == 0 and (tmp_path / "runs" / "short_2").is_dir()  # a taken name gets a suffix
    bad = cli("train", "--resume", run.root, "--epochs", 3)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --resume continues a run with its own config")
