"""End to end: a run directory, the CLI's one-line errors, resume after kill -9, and torchrun (DDP)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import SEED_DIR, TINY

SEED_KEYS = ("timestamp", "epoch", "phase", "session_id", "loss", "accuracy")


def cli(*args, cwd=None, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "trainpilot", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})})


def sets(cfg: dict) -> list[str]:
    out = []
    for k, v in cfg.items():
        out += ["--set", f"{k}={json.dumps(v, ensure_ascii=False)}"]
    return out


def test_two_epoch_run_writes_a_complete_run_directory(tiny_run):
    d = tiny_run.dir
    for name in ("config.resolved.json", "metrics.jsonl", "run.json", "summary.json", "checkpoints/last.pt",
                 "checkpoints/best.pt"):
        assert (d / name).exists(), name
    records = tiny_run.history
    assert [(r["epoch"], r["phase"]) for r in records] == [(1, "train"), (1, "val"), (2, "train"), (2, "val")]
    for r in records:
        assert all(k in r for k in SEED_KEYS)
    val = records[-1]
    for key in ("macro_f1", "per_class", "confusion_matrix", "train_loss", "val_accuracy", "lr", "epoch_seconds"):
        assert key in val
    assert records[0]["images_per_s"] > 0
    assert sum(map(sum, val["confusion_matrix"])) == sum(v["support"] for v in val["per_class"].values())
    last = torch.load(d / "checkpoints/last.pt", weights_only=True)
    for key in ("model", "optimizer", "schedule", "scaler", "ema", "epoch", "rng", "config", "class_names"):
        assert key in last
    resolved = json.loads((d / "config.resolved.json").read_text())
    assert resolved["model_name_resolved"] == "mobilenetv3_small_050"


def test_class_weights_are_computed_into_the_resolved_config(tiny_cfg, tmp_path):
    import trainpilot
    from trainpilot.data.synthetic import make_defect_dataset

    data = make_defect_dataset(tmp_path / "imb", per_class=12, image_size=40, seed=2, classes=("a", "b"),
                               counts={"b": 4})
    run = trainpilot.train({**tiny_cfg, "data_dir": str(data), "num_epochs": 1, "use_class_weights": True,
                            "val_split": 0.25}, runs_dir=tmp_path / "runs", quiet=True)
    weights = json.loads((run.dir / "config.resolved.json").read_text())["class_weights"]
    assert weights["b"] > 1.0 > weights["a"]


@pytest.mark.parametrize("args,expect", [
    (["train", "--data", "/does/not/exist"], "data_dir"),
    (["train", "--config", SEED_DIR / "original_config.json"], "Windows path"),
    (["train", "--data", ".", "--set", "learning_rat=1"], "did you mean 'learning_rate'"),
    (["train", "--data", ".", "--set", "task_type=detection"], "task_type"),
    (["evaluate", "/tmp"], "run directory"),
])
def test_cli_user_errors_are_one_line(args, expect, tmp_path):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert expect in err


def test_cli_seed_config_with_local_data_trains(tiny_data, tmp_path):
    """The seed config verbatim plus --data: Windows output paths are skipped with a notice, not created."""
    result = cli("train", "--config", SEED_DIR / "original_config.json", "--data", tiny_data, "--quiet",
                 *sets({"model_name": "mobilenetv3_small_050", "image_size": 32, "num_epochs": 1,
                        "use_pretrained": False, "mixed_precision": False}), "--runs-dir", tmp_path / "runs",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "model_save_dir" in result.stderr and "Windows path" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    (run,) = (tmp_path / "runs").iterdir()
    resolved = json.loads((run / "config.resolved.json").read_text())
    assert resolved["learning_rate"] == 0.0001 and resolved["class_weights"]["划痕"] == 1.0


def _val(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["phase"] == "val"]


def test_resume_after_kill_9_matches_an_uninterrupted_run(tiny_data, tmp_path):
    cfg = {**TINY, "num_epochs": 4, "data_dir": str(tiny_data)}
    ref = cli("train", "--quiet", "--runs-dir", tmp_path / "ref", *sets(cfg))
    assert ref.returncode == 0, ref.stderr
    (ref_dir,) = (tmp_path / "ref").iterdir()

    proc = subprocess.Popen([sys.executable, "-m", "trainpilot", "train", "--quiet", "--runs-dir",
                             str(tmp_path / "crash"), *sets(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    run_dir = None
    while time.time() < deadline:
        dirs = list((tmp_path / "crash").glob("*/checkpoints/last.pt")) if (tmp_path / "crash").exists() else []
        if dirs and torch.load(dirs[0], weights_only=True)["epoch"] >= 2:
            run_dir = dirs[0].parents[1]
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_dir is not None, "the run never reached epoch 2"

    resumed = cli("train", "--resume", run_dir, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    got, want = _val(run_dir), _val(ref_dir)
    assert [r["epoch"] for r in got] == [1, 2, 3, 4]
    assert abs(got[-1]["accuracy"] - want[-1]["accuracy"]) <= 0.1
    assert got[-1]["loss"] == pytest.approx(want[-1]["loss"], rel=0.05)


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_two_processes_gloo(tiny_data, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    cfg = {**TINY, "num_epochs": 2, "data_dir": str(tiny_data)}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "trainpilot", "train",
                             "--quiet", "--runs-dir", str(tmp_path / "runs"), *sets(cfg)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()  # one run directory: only rank 0 writes
    assert (result.stdout + result.stderr).count("run directory") == 1  # only rank 0 prints the summary
    val = _val(run)
    assert [r["epoch"] for r in val] == [1, 2]
    n_val = sum(1 for _ in (tiny_data / "val").rglob("*.png"))
    assert sum(map(sum, val[-1]["confusion_matrix"])) == n_val  # metrics reduced across both ranks
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in best["model"])  # loadable by a single process
    from trainpilot.inference import load_trained

    assert load_trained(run).class_names == val[-1]["class_names"]


def test_cli_evaluate_predict_export_report_analyze(tiny_run, tiny_data, tmp_path):
    run = tiny_run.dir
    ev = cli("evaluate", run, "--split", "test")
    assert ev.returncode == 0, ev.stderr
    assert (run / "reports" / "confusion_matrix_test.png").exists() and "macro-F1" in ev.stdout
    result = json.loads((run / "reports" / "evaluation_test.json").read_text())
    assert 0.0 <= result["accuracy"] <= 1.0 and result["num_images"] == sum(1 for _ in (tiny_data / "test").rglob("*.png"))

    pred = cli("predict", run, tiny_data / "test", "--top-k", "2", "--csv", tmp_path / "p.csv",
               "--sort-into", tmp_path / "sorted", "--threshold", "0.5")
    assert pred.returncode == 0, pred.stderr
    rows = (tmp_path / "p.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 1 + result["num_images"]
    assert sum(1 for _ in (tmp_path / "sorted").rglob("*.png")) == result["num_images"]

    exp = cli("export", run, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert exp.returncode == 0, exp.stderr
    assert (tmp_path / "m.onnx").exists() and "verified with onnxruntime" in exp.stderr

    analyze = cli("analyze", run)
    assert analyze.returncode == 0, analyze.stderr
    assert "diagnosis:" in analyze.stderr and list((run / "reports").glob("parameter_tuning_report_*.md"))
    report = cli("report", run, "--lang", "zh")
    assert report.returncode == 0, report.stderr
    html = (run / "reports" / "summary.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
