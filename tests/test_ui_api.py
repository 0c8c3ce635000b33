"""The dashboard's HTTP surface with the test client: every route, bad ids, traversal, tokens, Origin,
double decisions, and no API key in any response."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from fake_runs import adjustment, make_run  # noqa: E402
from trainpilot.config import ConfigError, load_config  # noqa: E402
from trainpilot.ui import create_app  # noqa: E402

TOKEN = "test-token-123456"
PLANTED = "sk-planted-0123456789abcdef"
H = {"X-Token": TOKEN}


@pytest.fixture()
def runs(tmp_path):
    d = tmp_path / "runs"
    make_run(d, "done", epochs=12, adjustments=[adjustment(3, "kept"), adjustment(5, "no_change"),
                                                  adjustment(7, "reverted", key="weight_decay", old=0.05, new=0.1)])
    make_run(d, "live", epochs=6, state="running", mode="suggest",
             adjustments=[adjustment(4, "proposed", adj_id="adj_wait", mode="suggest"),
                          adjustment(2, "kept", adj_id="adj_old", mode="suggest")])
    make_run(d, "other", epochs=4, model="mobilenetv3_small_050")
    return d


@pytest.fixture()
def client(runs):
    return TestClient(create_app(runs, token=TOKEN))


def test_runs_list_and_run_detail(client):
    rows = {r["run"]: r for r in client.get("/api/runs").json()["runs"]}
    assert set(rows) == {"done", "live", "other"}
    assert rows["live"]["status"] == "running" and rows["live"]["pending"] == 1
    assert rows["done"]["kept"] == 1 and rows["done"]["reverted"] == 1 and rows["done"]["test_accuracy"] == 0.91
    d = client.get("/api/runs/done").json()
    assert d["series"]["epoch"] == list(range(1, 13)) and len(d["recall"]) == 4 and len(d["recall"][0]) == 12
    drawn = [a for a in d["adjustments"] if a["drawn"]]
    assert [a["label"] for a in drawn] == ["lr ÷2 · kept", "wd ×2 · reverted"]  # words, never ids
    assert all("adj_" not in a["label"] for a in d["adjustments"])
    assert not next(a for a in d["adjustments"] if a["status"] == "no_change")["drawn"]
    assert drawn[0]["window"] == [3, 5] and drawn[0]["outcome"]["delta"] == 0.02
    assert d["changed"] == {"learning_rate": 0.001}  # the reverted change is not in the config any more
    assert d["confusion"]["counts"][0][0] == 8 and d["train_counts"] == [40, 70, 100, 130]
    assert d["scoring"] == "4 views (test-time flips) · class-prior tau 0.75"  # what best.pt adds to the scores
    assert client.get("/api/runs/live").json()["scoring"] is None  # not finished: nothing fitted yet
    zh = client.get("/api/runs/done?lang=zh").json()
    assert next(a for a in zh["adjustments"] if a["drawn"])["label"] == "lr ÷2 · 已保留"
    # why the analysis ran and what it found are stored as message keys: each reader's language, not the run's
    card_en, card_zh = d["adjustments"][0], zh["adjustments"][0]
    assert card_en["reason"].startswith("Scheduled analysis") and card_zh["reason"].startswith("第 3 轮的定期分析")
    assert "has not improved by 1%" in card_en["states"][0]["evidence"][0]
    assert card_zh["states"][0]["evidence"][0].startswith("最近 3 轮 val_accuracy 提升不足 1%")
    assert card_en["rejected"][0]["reason"] == "4096 is outside the allowed range [1, 1024]"
    assert card_zh["rejected"][0]["reason"] == "4096 超出允许范围 [1, 1024]"
    kept_en, kept_zh = (next(a for a in x["adjustments"] if a["status"] == "kept") for x in (d, zh))
    assert kept_en["outcome"]["why"].startswith("val_accuracy is within the noise margin")
    assert kept_zh["outcome"]["why"] == "val_accuracy 不低于改动前的最佳值（或差距在噪声容限内）"
    assert kept_en["notes"] == ["peak lr set to 0.0005; the schedule's shape continues from its current point"]
    assert kept_zh["notes"] == ["峰值学习率设为 0.0005；调度曲线从当前位置继续"]
    assert zh["scoring"] == "4 个视图（测试时翻转） · 类别先验校正 tau 0.75"


def test_suspect_labels_come_with_thumbnails_of_files_inside_the_data_folder_only(client, runs, tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    (data / "train" / "a").mkdir(parents=True)
    Image.new("L", (300, 120), 90).save(data / "train" / "a" / "x.png")
    (tmp_path / "secret.png").write_bytes((data / "train" / "a" / "x.png").read_bytes())  # outside the data folder
    cfg_path = runs / "done" / "config.resolved.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg_path.write_text(json.dumps({**cfg, "data_dir": str(data)}), encoding="utf-8")
    assert client.get("/api/runs/done").json()["suspects"] is None  # no list written yet: no panel
    rows = ["file,label,suggested,p_label,p_suggested", "train/a/x.png,a,b,0.05,0.9", "../secret.png,a,b,0.1,0.8",
            "train/a/gone.png,b,a,0.2,0.7"]
    (runs / "done" / "reports" / "suspect_labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    s = client.get("/api/runs/done").json()["suspects"]
    assert s["count"] == 3 and [r["file"] for r in s["shown"]] == ["train/a/x.png", "../secret.png", "train/a/gone.png"]
    thumbs = [r["thumb"] for r in s["shown"]]
    assert thumbs[0].startswith("data:image/jpeg;base64,") and thumbs[1:] == [None, None]
    page = client.get("/runs/done").text
    assert 'id="suspects-panel"' in page and "reports/suspect_labels.csv" in page


@pytest.mark.parametrize("bad", ["nope", "%2e%2e", "%2e", "..%2F..%2Fetc", "%2Fetc", "%2Ftmp", ".ui", "_demo_dataset"])
def test_bad_run_ids_are_one_line_404s(client, bad):
    for url in (f"/api/runs/{bad}", f"/runs/{bad}", f"/runs/{bad}/files/status.json"):
        r = client.get(url)
        assert r.status_code == 404, (url, r.status_code)
        if url.startswith("/api/"):
            assert "\n" not in r.json()["error"] and "Traceback" not in r.text


@pytest.mark.parametrize("bad", ["..", ".", "/etc", "../runs/done", "done/../done", "", "done/", "a\\b"])
def test_the_store_finds_runs_by_id_only(runs, bad):
    from trainpilot.runs import RunStoreError, find_run

    with pytest.raises(RunStoreError, match="no run"):
        find_run(runs, bad)
    assert find_run(runs, "done").id == "done"


def test_files_only_by_known_names_and_never_outside_the_run(client, runs, tmp_path):
    assert client.get("/runs/done/files/config.resolved.json").json()["model_name"] == "resnet18"
    summary = client.get("/runs/done/files/reports/summary.html")
    assert summary.status_code == 200 and "default-src 'none'" in summary.headers["content-security-policy"]
    for name in ("checkpoints/last.pt", "reports%2F..%2Fconfig.resolved.json", "reports/%2e%2e/config.resolved.json", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd",
                 "reports/nothing.md", "reports/a/b.md", "%2Fetc%2Fpasswd"):
        assert client.get(f"/runs/done/files/{name}").status_code == 404, name
    secret = tmp_path / "secret.md"
    secret.write_text("outside")
    os.symlink(secret, runs / "done" / "reports" / "link.md")  # a symlink out of the run directory
    assert client.get("/runs/done/files/reports/link.md").status_code == 404
    assert client.get("/runs/done/reports/link.md").status_code == 404
    outside = tmp_path / "elsewhere"
    make_run(tmp_path, "elsewhere")
    os.symlink(outside, runs / "escaped")  # a run directory that is a symlink to somewhere else
    assert client.get("/api/runs/escaped").status_code == 404


def test_report_renders_markdown_without_raw_html(client):
    name = next(n for n in client.get("/api/runs/done").json()["reports"] if n.endswith(".md"))
    page = client.get(f"/runs/done/reports/{name}")
    assert page.status_code == 200 and "<table>" in page.text and "<script>alert(1)" not in page.text


def test_pages_render_in_both_languages(client):
    for url in ("/", "/runs/done", "/runs/live", "/new", "/predict", "/compare?run=done&run=other"):
        r = client.get(url)
        assert r.status_code == 200 and "trainpilot" in r.text, url
    assert "训练记录" in client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    en = client.get("/?lang=en", headers={"Accept-Language": "zh-CN"})
    assert "Runs" in en.text and en.cookies.get("lang") == "en"
    assert client.get("/latest", follow_redirects=False).headers["location"] == "/runs/live"
    assert client.get("/static/vendor/uPlot.iife.min.js").status_code == 200


def test_token_required_on_other_hosts(runs):
    c = TestClient(create_app(runs, token=TOKEN, require_token=True))
    assert c.get("/api/runs").status_code == 401 and c.get("/").status_code == 401
    assert c.get("/api/runs", headers={"X-Token": "wrong-token-xx"}).status_code == 401
    assert c.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    first = c.get(f"/?token={TOKEN}")
    assert first.status_code == 200 and c.get("/api/runs").status_code == 200  # the cookie it set


def test_posts_need_the_token_header_and_a_matching_origin(client):
    url = "/api/runs/live/adjustments/adj_wait/approve"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"X-Token": "wrong-token-xx"}).status_code == 401
    assert client.post(url, headers={**H, "Origin": "http://evil.example"}).status_code == 403
    assert client.get(url).status_code == 405  # state changes are POST only
    for route in ("/api/runs/live/stop", "/api/runs/done/resume", "/api/start"):
        assert client.get(route).status_code == 405, route
    assert client.post(url, headers={**H, "Origin": "http://testserver"}, json={}).status_code == 200


def test_a_loopback_server_refuses_other_host_names(runs):
    c = TestClient(create_app(runs, token=TOKEN, allowed_hosts={"127.0.0.1", "localhost"}), base_url="http://127.0.0.1:7860")
    assert c.get("/api/runs").status_code == 200
    assert c.get("/api/runs", headers={"Host": "evil.example:7860"}).status_code == 400  # DNS rebinding


def test_approve_once_through_the_cli_decision_code(client, runs):
    from trainpilot.runs import Run
    from trainpilot.tuning.cli import decide

    r = client.post("/api/runs/live/adjustments/adj_wait/approve", headers=H, json={"note": "looks right"})
    assert r.status_code == 200
    (d,) = Run.open(runs / "live").decisions
    assert d["decision"] == "approve" and d["by"] == "dashboard" and d["note"] == "looks right" and d["at"] > 0
    card = next(a for a in client.get("/api/runs/live").json()["adjustments"] if a["id"] == "adj_wait")
    assert card["decision"]["by"] == "dashboard"
    again = client.post("/api/runs/live/adjustments/adj_wait/reject", headers=H, json={})
    assert again.status_code == 409 and "already approved by dashboard" in again.json()["error"]
    with pytest.raises(ValueError, match="already approved by dashboard"):
        decide(Run.open(runs / "live"), "adj_wait", "reject", by="cli")
    kept = client.post("/api/runs/live/adjustments/adj_old/approve", headers=H)
    assert kept.status_code == 409 and "'kept', not waiting" in kept.json()["error"]
    assert client.post("/api/runs/live/adjustments/adj_nope/approve", headers=H).status_code == 409
    assert client.post("/api/runs/live/adjustments/adj_wait/maybe", headers=H).status_code == 404
    assert client.post("/api/runs/nope/adjustments/adj_wait/approve", headers=H).status_code == 404


def test_a_finished_run_cannot_be_decided(client, runs):
    make_run(runs, "ended", adjustments=[adjustment(2, "proposed", adj_id="adj_late", mode="suggest")])
    r = client.post("/api/runs/ended/adjustments/adj_late/approve", headers=H)
    assert r.status_code == 409 and "completed" in r.json()["error"]


def test_stop_signals_the_runs_own_process_and_resume_refuses_what_it_cannot(client, runs):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "trainpilot"])
    try:
        status = json.loads((runs / "live" / "status.json").read_text())
        (runs / "live" / "status.json").write_text(json.dumps({**status, "pid": proc.pid}))
        assert client.post("/api/runs/live/stop", headers=H).json() == {"stopping": proc.pid}
        assert proc.wait(timeout=10) != 0
    finally:
        proc.kill()
    assert client.post("/api/runs/done/stop", headers=H).status_code == 409
    r = client.post("/api/runs/done/resume", headers=H)
    assert r.status_code == 409 and "completed" in r.json()["error"]


def test_resume_runs_train_resume(client, runs, monkeypatch):
    from trainpilot.ui import launch

    make_run(runs, "halted", state="stopped")
    calls = []
    monkeypatch.setattr(launch, "_spawn", lambda args, log: calls.append(args) or subprocess.Popen(["true"]))
    assert client.post("/api/runs/halted/resume", headers=H).status_code == 200
    assert calls == [["train", "--quiet", "--resume", str(runs / "halted")]]


def test_compare_overlays_and_diffs(client):
    d = client.get("/api/compare?run=done&run=other").json()
    assert [r["id"] for r in d["runs"]] == ["done", "other"]
    assert [(r["run"], r["test_accuracy"]) for r in d["results"]] == [("done", 0.91), ("other", 0.91)]
    keys = {row["key"]: row["values"] for row in d["diff"]}
    assert keys["model_name"] == ["resnet18", "mobilenetv3_small_050"] and keys["num_epochs"] == [12, 4]
    assert client.get("/api/compare?run=done").status_code == 400
    assert client.get("/api/compare?run=done&run=../x").status_code == 404


def test_schema_and_validation_say_what_the_cli_says(client):
    groups = client.get("/api/schema").json()["groups"]
    fields = {f["key"]: f for g in groups for f in g["fields"]}
    assert fields["learning_rate"]["bounds"] == {"gt": 0.0, "le": 10.0} and fields["optimizer"]["kind"] == "choice"
    assert "AdamW" in fields["optimizer"]["choices"] and fields["learning_rate"]["help"]
    assert "intelligent_training.mode" in fields and "data_dir" not in fields
    errors = client.post("/api/validate", headers=H, json={"values": {"learning_rate": "-1", "num_epochs": "20"}}).json()
    with pytest.raises(ConfigError) as cli:
        load_config(overrides=["learning_rate=-1"])
    assert errors["errors"] == {"learning_rate": str(cli.value)} and errors["values"] == {"learning_rate": -1,
                                                                                          "num_epochs": 20}
    bad = client.post("/api/start", headers=H, json={"values": {"optimizer": "Adagrad"}, "data_dir": "/x"})
    assert bad.status_code == 422 and "optimizer" in bad.json()["errors"]
    assert client.post("/api/validate", headers=H, content=b"not json").status_code == 400


def test_start_launches_train_with_only_the_changed_keys(client, runs, tiny_data, monkeypatch):
    from trainpilot.ui import launch

    seen = {}
    monkeypatch.setattr(launch, "start_run", lambda d, name, over: seen.update(name=name, over=over) or
                        subprocess.Popen(["true"]))
    r = client.post("/api/start", headers=H, json={"values": {"num_epochs": "3", "learning_rate": "0.002",
                                                              "optimizer": "AdamW"}, "data_dir": str(tiny_data),
                                                   "name": "from_ui"})
    assert r.status_code == 200 and r.json()["url"] == "/runs/from_ui"
    assert seen == {"name": "from_ui", "over": {"num_epochs": 3, "data_dir": str(tiny_data)}}
    missing = client.post("/api/start", headers=H, json={"values": {}, "data_dir": str(runs / "no_such_dir")})
    assert missing.status_code == 400 and "does not exist" in missing.json()["error"]
    assert client.post("/api/start", headers=H, json={"values": {}, "data_dir": str(tiny_data),
                                                      "name": "../up"}).status_code == 400
    assert client.get("/api/launched/from_ui").json()["ready"] is False


def test_dataset_preview_reads_only_images(client, tiny_data, tmp_path):
    p = client.post("/api/preview", headers=H, json={"data_dir": str(tiny_data), "values": {}}).json()
    assert [c["name"] for c in p["classes"]] == ["划痕", "异物", "污点"]
    assert p["classes"][0]["counts"]["train"] > 0 and p["classes"][0]["thumbs"][0].startswith("data:image/jpeg;base64,")
    assert any(c["key"] == "monitor" for c in p["recipe"])
    flat = tmp_path / "flat"
    for cls in ("a", "b"):
        (flat / cls).mkdir(parents=True)
        for i in range(3):
            (flat / cls / f"{i}.png").write_bytes(next((tiny_data / "train" / "划痕").glob("*.png")).read_bytes())
    (flat / "a" / "notes.txt").write_text("not an image")
    (flat / "b" / "broken.png").write_bytes(b"not a png")
    p = client.post("/api/preview", headers=H, json={"data_dir": str(flat), "values": {}}).json()
    why = {os.path.basename(s["path"]): s["why"] for s in p["skipped"]}
    assert set(why) == {"notes.txt", "broken.png"} and "not an image" in why["notes.txt"]
    r = client.post("/api/preview", headers=H, json={"data_dir": str(tmp_path / "none"), "values": {}})
    assert r.status_code == 400 and "does not exist" in r.json()["error"]


def test_predict_uploads_and_a_server_folder(tiny_run, tiny_data):
    c = TestClient(create_app(tiny_run.dir.parent, token=TOKEN))
    image = next((tiny_data / "test" / "污点").glob("*.png"))
    r = c.post("/api/predict", headers=H, data={"run": tiny_run.dir.name, "checkpoint": "best", "top_k": "2"},
               files=[("files", ("part.png", image.read_bytes(), "image/png"))])
    assert r.status_code == 200, r.text
    (pred,) = r.json()["predictions"]
    assert pred["path"] == "part.png" and len(pred["top"]) == 2 and pred["thumb"].startswith("data:image/jpeg")
    folder = c.post("/api/predict", headers=H, data={"run": tiny_run.dir.name, "checkpoint": "last",
                                                    "folder": str(tiny_data / "test")}).json()
    assert len(folder["predictions"]) == sum(1 for _ in (tiny_data / "test").rglob("*.png"))
    bad = c.post("/api/predict", headers=H, data={"run": tiny_run.dir.name, "checkpoint": "best"},
                 files=[("files", ("x.txt", b"hello", "text/plain"))])
    assert bad.status_code == 400 and "not an image file" in bad.json()["error"]
    assert c.post("/api/predict", headers=H, data={"run": tiny_run.dir.name, "checkpoint": "../x"}).status_code == 404
    assert c.post("/api/predict", headers=H, data={"run": tiny_run.dir.name, "checkpoint": "best",
                                                   "folder": "/etc/passwd"}).status_code == 400
    assert "Predict" in c.get("/predict").text


def test_api_keys_never_leave_the_server(runs, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", PLANTED)
    rec = adjustment(3, "kept", adj_id="adj_leak")
    rec["raw_output"] = f"my key is {PLANTED}"
    make_run(runs, "leaky", adjustments=[rec])
    cfg = json.loads((runs / "leaky" / "config.resolved.json").read_text())
    cfg["model_note"] = PLANTED
    (runs / "leaky" / "config.resolved.json").write_text(json.dumps(cfg))
    c = TestClient(create_app(runs, token=TOKEN))
    urls = ["/", "/runs/leaky", "/api/runs", "/api/runs/leaky", "/runs/leaky/files/config.resolved.json",
            "/runs/leaky/files/adjustments.jsonl", "/api/compare?run=leaky&run=done", "/new", "/api/schema"]
    urls += [f"/runs/leaky/reports/{n}" for n in c.get("/api/runs/leaky").json()["reports"] if n.endswith(".md")]
    for url in urls:
        r = c.get(url)
        assert r.status_code == 200 and PLANTED not in r.text, url


def test_serve_errors_are_one_line(tmp_path):
    import socket

    from trainpilot.ui.server import ServeError, check_port, resolve_token

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServeError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port("127.0.0.1", port)
        out = subprocess.run([sys.executable, "-m", "trainpilot", "ui", "--runs-dir", str(tmp_path), "--port", str(port)],
                             capture_output=True, text=True, timeout=120)
        from trainpilot.ui.cli import serve_during_training

        with pytest.raises(ServeError, match="already in use"):  # `trainpilot train --ui` on a taken port
            serve_during_training(tmp_path, "r", None, port=port)
    assert out.returncode == 2 and out.stderr.startswith("error: port") and len(out.stderr.strip().splitlines()) == 1
    bad = subprocess.run([sys.executable, "-m", "trainpilot", "ui", "--runs-dir", str(tmp_path), "--token", "x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: the token must be") and "Traceback" not in bad.stderr
    with pytest.raises(ServeError, match="at least 8 characters"):
        resolve_token("0.0.0.0", "short")
    token, required, generated = resolve_token("0.0.0.0", None)
    assert required and generated and len(token) >= 16
    assert resolve_token("127.0.0.1", None)[1] is False


def test_event_stream_sends_the_detail(runs):
    import asyncio

    from trainpilot.ui import api

    class Req:
        query_params, cookies, headers = {}, {}, {}
        app = type("A", (), {"state": type("S", (), {"ui": create_app(runs, token=TOKEN).state.ui})})

        def __init__(self):
            self.calls = 0

        async def is_disconnected(self):
            self.calls += 1
            return self.calls > 1

    async def first():
        response = await api.events("done", Req())
        async for item in response.body_iterator:
            return item

    item = asyncio.run(first())
    assert item["event"] == "detail" and json.loads(item["data"])["id"] == "done"


def test_study_pages_list_trials_and_serve_only_the_study_files(runs, tmp_path):
    """A real (one-trial) study under the runs folder: listed, its page, its report and trial summary."""
    import json

    from conftest import TINY
    from trainpilot.data.synthetic import make_defect_dataset
    from trainpilot.search.cli import tune as tune_cmd

    data = make_defect_dataset(tmp_path / "sdata", per_class=6, image_size=32, seed=3, classes=("a", "b"),
                               splits={"train": 0.5, "val": 0.25, "test": 0.25})
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    fixed = [f"{k}={json.dumps(v)}" for k, v in TINY.items() if k != "intelligent_training"]
    tune_cmd(data=data, config=None, set_=fixed + ["num_epochs=1"], runs_dir=runs, trials=1, epoch_budget=0,
             study="st", storage=None, space=space, sampler="tpe", pruner="none", controller=True, n_jobs=1, seed=0,
             hybrid_share=0.3, memory=None, no_memory=True, resume=None, worker=0, threads=0)
    c = TestClient(create_app(runs, token=TOKEN))
    listing = c.get("/studies")
    assert listing.status_code == 200 and "/studies/st" in listing.text
    detail = c.get("/studies/st?lang=zh")
    assert detail.status_code == 200 and "learning_rate" in detail.text and "trial_0000/reports/summary.html" in detail.text
    report = c.get("/studies/st/files/study.html")
    assert report.status_code == 200 and "script-src 'self'" in report.headers["content-security-policy"]
    assert c.get("/studies/st/files/plotly.min.js").status_code == 200
    assert c.get("/studies/st/files/trial_0000/reports/summary.html").status_code == 200
    for bad in ("/studies/st/files/study.journal", "/studies/st/files/trial_0000/checkpoints/best.pt",
                "/studies/st/files/../st/study.json", "/studies/..%2Fetc/files/study.html", "/studies/nope"):
        assert c.get(bad).status_code == 404, bad
