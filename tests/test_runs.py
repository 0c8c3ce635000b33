"""The run store: typed rows, incremental and tolerant reading, status, and the `runs` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from trainpilot.engine.events import AdjustmentStatus, EpochRow, epoch_rows
from trainpilot.runs import MetricsFollower, Run, RunStoreError, list_runs


def _train(e, loss=1.0, lr=2.83765431e-4):
    return {"epoch": e, "phase": "train", "loss": loss, "accuracy": 0.5, "lr": lr, "grad_norm_mean": 1.0,
            "nonfinite_steps": 0, "steps": 4, "epoch_seconds": 2.0, "timestamp": 100.0 + e}


def _val(e, acc=0.5, ema=None):
    return {"epoch": e, "phase": "val", "loss": 0.9, "accuracy": acc, "macro_f1": acc - 0.1, "val_accuracy": acc,
            "ema_accuracy": ema, "class_names": ["a", "b"], "per_class": {}, "confusion_matrix": [[1, 0], [0, 1]],
            "epoch_seconds": 3.0, "timestamp": 101.0 + e}


def _write_run(root, rows=3, status=None, adjustments=(), cfg=None):
    root.mkdir(parents=True)
    (root / "config.resolved.json").write_text(json.dumps({"model_name": "resnet18", "data_dir": "/d/neu",
                                                           "num_epochs": 5, "monitor": "val_accuracy", **(cfg or {})}))
    (root / "run.json").write_text(json.dumps({"classes": ["a", "b"], "train_counts": [8, 4], "val_count": 3}))
    with open(root / "metrics.jsonl", "w") as f:
        for e in range(1, rows + 1):
            f.write(json.dumps(_train(e)) + "\n" + json.dumps(_val(e, acc=0.5 + 0.1 * e)) + "\n")
    with open(root / "adjustments.jsonl", "w") as f:
        for a in adjustments:
            f.write(json.dumps(a) + "\n")
    if status is not None:
        (root / "status.json").write_text(json.dumps(status))
    return root


def test_epoch_row_types_train_and_val_records_and_older_merged_rows():
    (row,) = epoch_rows([_train(1), _val(1, acc=0.6, ema=0.7)])
    assert isinstance(row, EpochRow) and row.epoch == 1
    assert (row.train_loss, row.val_accuracy, row.lr, row.nonfinite_steps) == (1.0, 0.6, 2.83765431e-4, 0)
    assert row.metric("val_accuracy") == 0.6 and row.metric("val_accuracy", with_ema=True) == 0.7
    (old,) = epoch_rows([{"epoch": 2, "train_loss": 0.4, "val_loss": 0.5, "val_macro_f1": 0.8, "lr": 1e-3}])
    assert (old.train_loss, old.val_loss, old.val_macro_f1, old.lr) == (0.4, 0.5, 0.8, 1e-3)
    later = epoch_rows([_val(1, acc=0.2), _val(1, acc=0.9)])
    assert later[0].val_accuracy == 0.9  # a later record for the same epoch and phase wins


def test_follower_reads_only_new_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(_train(1)) + "\n" + json.dumps(_val(1)) + "\n")
    f = MetricsFollower(path)
    assert len(f.poll()) == 2
    offset = f.offset
    with open(path, "a") as fh:
        fh.write(json.dumps(_train(2))[:25])  # a writer in the middle of a line
    assert f.poll() == [] and f.offset == offset
    with open(path, "a") as fh:
        fh.write(json.dumps(_train(2))[25:] + "\n")
    (new,) = f.poll()
    assert new["epoch"] == 2 and len(f.records) == 3
    path.write_text(json.dumps(_train(1)) + "\n")  # replaced (a resume drops re-run epochs): read again
    f.poll()
    assert [r["epoch"] for r in f.records] == [1]


def test_a_truncated_line_in_the_middle_does_not_stop_the_store(tmp_path):
    root = _write_run(tmp_path / "r", rows=3)
    lines = (root / "metrics.jsonl").read_text().splitlines()
    lines[2] = lines[2][:30]  # epoch 2's train record cut short (a crash while appending, then a resume)
    (root / "metrics.jsonl").write_text("\n".join(lines) + "\n" + json.dumps(_train(4))[:40])
    run = Run.open(root)
    assert [r.epoch for r in run.rows] == [1, 2, 3]
    assert run.rows[1].train_loss is None and run.rows[1].val_accuracy == pytest.approx(0.7)
    assert run.best() == (3, pytest.approx(0.8))


def test_run_exposes_config_counts_adjustments_and_an_older_run_opens(tmp_path):
    adj = [{"adj_id": "adj_1", "epoch": 2, "status": "applied"}, {"adj_id": "adj_2", "epoch": 3, "status": "reverted"},
           {"adj_id": "adj_1", "epoch": 2, "status": "kept"}]
    root = _write_run(tmp_path / "old", adjustments=adj)  # no status.json: written before the store existed
    (root / "summary.json").write_text(json.dumps({"stop_reason": "completed num_epochs"}))
    run = Run.open(root)
    assert run.classes == ["a", "b"] and run.train_counts == [8, 4] and run.val_count == 3
    assert [a["status"] for a in run.adjustments] == ["kept", "reverted"]
    assert run.adjustment_counts() == {"kept": 1, "reverted": 1}
    assert run.adjustment("adj_1")["status"] == AdjustmentStatus.KEPT
    assert run.status.state == "completed" and run.duration_s() == pytest.approx(9.0)  # val records hold train + eval time
    with pytest.raises(RunStoreError, match="not a trainpilot run directory"):
        Run.open(tmp_path)
    (root / "config.resolved.json").write_text(json.dumps({"model_name": "x", "no_such_key": 1}))
    with pytest.raises(RunStoreError, match="does not validate"):
        run.train_config()


def test_status_tells_a_crashed_run_from_a_running_one(tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    common = {"state": "running", "host": socket.gethostname(), "started_at": 1.0, "heartbeat": 2.0, "epoch": 3}
    alive = Run.open(_write_run(tmp_path / "a", status={**common, "pid": os.getpid()}))
    crashed = Run.open(_write_run(tmp_path / "b", status={**common, "pid": int(dead.stdout)}))
    stopped = Run.open(_write_run(tmp_path / "c", status={**common, "state": "stopped", "reason": "stopped by Ctrl-C",
                                                          "pid": int(dead.stdout)}))
    assert alive.status.state == "running"
    assert crashed.status.state == "crashed" and "after epoch 3" in crashed.status.reason
    assert (stopped.status.state, stopped.status.reason) == ("stopped", "stopped by Ctrl-C")
    (tmp_path / "_demo_dataset").mkdir()
    assert [r.id for r in list_runs(tmp_path)] == ["a", "b", "c"]


def test_report_history_shows_the_lr_at_human_precision_and_json_keeps_it_exact(tmp_path):
    from trainpilot.reports.markdown import write_adjustment_report

    history = [_train(1), _val(1)]
    record = {"adj_id": "adj_x", "epoch": 1, "status": "recorded", "changes": [], "rejected": [],
              "config_before": {}, "config_after": {}, "diagnosis": {"states": [], "features": {}}}
    md, js = write_adjustment_report(tmp_path, record, history, "en")
    table = [line for line in md.read_text().splitlines() if line.startswith("| **1** ")]
    assert table and table[0].endswith("| 0.000284 |")
    assert "0.000283765431" not in md.read_text()
    assert json.loads(js.read_text())["adj_id"] == "adj_x"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "trainpilot", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_runs_table_and_compare(tmp_path):
    _write_run(tmp_path / "runs" / "first", status={"state": "completed", "reason": "completed num_epochs"})
    _write_run(tmp_path / "runs" / "second", rows=2, cfg={"learning_rate": 0.01, "model_name": "resnet50"},
               adjustments=[{"adj_id": "adj_1", "epoch": 1, "status": "kept"}],
               status={"state": "stopped", "reason": "stopped by SIGTERM"})
    table = cli("runs", tmp_path / "runs")
    assert table.returncode == 0, table.stderr
    lines = {line.split()[1]: line for line in table.stdout.splitlines() if "first" in line or "second" in line}
    assert "completed" in lines["first"] and "0.8000 @3" in lines["first"] and "3/5" in lines["first"]
    assert "stopped" in lines["second"] and "1/0" in lines["second"] and "resnet50" in lines["second"]
    cmp = cli("runs", "compare", tmp_path / "runs" / "first", tmp_path / "runs" / "second")
    assert cmp.returncode == 0, cmp.stderr
    diff = {line.split()[1]: line for line in cmp.stdout.splitlines() if line.startswith("│ ")}
    assert "(absent)" in diff["learning_rate"] and "resnet18" in diff["model_name"] and "resnet50" in diff["model_name"]
    assert "data_dir" not in diff  # equal keys are not listed
    bad = cli("runs", "compare", tmp_path / "runs" / "first", tmp_path / "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
