"""The dashboard in a real Chromium (Debian's /usr/bin/chromium driven by Playwright), against a real
training run in suggest mode: the runs page, a live curve gaining points, an adjustment's marker and
card, approve -> applied at the next epoch, the New-run form's schema messages, the zh switch, Stop.

Screenshots go to $TRAINPILOT_UI_SHOTS (default: this session's tmp dir)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import TINY
from fake_runs import adjustment, make_run

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium")]
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")

TRAIN = textwrap.dedent("""
    import json, sys, time
    import trainpilot
    from trainpilot.config import build_config
    from trainpilot.tuning.actions import Proposal
    from trainpilot.tuning.advisors import Advisor
    from trainpilot.tuning.controller import TuningController

    cfg, runs, name = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]

    class HalveOnce(Advisor):  # a deterministic advisor: one proposal, then nothing
        name = "rules"
        calls = 0
        def advise(self, context):
            self.calls += 1
            changes = [{"key": "learning_rate", "value": 0.001, "reason": "the val loss oscillates"}] if self.calls == 1 else []
            return Proposal(analysis="Halve the learning rate: the loss is flat.", changes=changes, advisor="rules")

    class Pace:  # an epoch every ~second, so the page sees the run live
        def on_epoch_end(self, tr, epoch):
            time.sleep(0.6)
        def state_dict(self):
            return {}
        def load_state_dict(self, state):
            pass

    it = build_config({"intelligent_training": {"enabled": True, "mode": "suggest", "min_epochs_before_analysis": 2,
                       "analysis_interval": 1, "cooldown_epochs": 0, "evaluation_window": 2,
                       "divergence_threshold": 100.0}}).intelligent_training
    trainpilot.train(cfg, hooks=[Pace(), TuningController(it, advisor=HalveOnce())], runs_dir=runs, name=name, quiet=True)
""")


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("TRAINPILOT_UI_SHOTS") or tmp_path_factory.mktemp("ui_shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_data):
    d = tmp_path_factory.mktemp("ui_runs") / "runs"
    make_run(d, "resnet18_baseline", epochs=30, num_epochs=30, seed=1,
             adjustments=[adjustment(8, "kept"), adjustment(12, "no_change"),
                          adjustment(16, "reverted", key="weight_decay", old=0.05, new=0.1),
                          adjustment(22, "kept", key="label_smoothing", old=0.1, new=0.05)])
    cfg = json.loads((d / "resnet18_baseline" / "config.resolved.json").read_text(encoding="utf-8"))
    (d / "resnet18_baseline" / "config.resolved.json").write_text(json.dumps({**cfg, "data_dir": str(tiny_data)}),
                                                                    encoding="utf-8")
    first = sorted((tiny_data / "train").rglob("*.png"))[:2]
    (d / "resnet18_baseline" / "reports" / "suspect_labels.csv").write_text(
        "file,label,suggested,p_label,p_suggested\n" + "".join(
            f"{f.relative_to(tiny_data).as_posix()},{f.parent.name},other,0.0{i + 1},0.9\n" for i, f in enumerate(first)),
        encoding="utf-8-sig")
    make_run(d, "mobilenet_small", epochs=24, model="mobilenetv3_small_100", seed=2, test=(0.93, 0.88))
    make_run(d, "effnet_crashed", epochs=7, num_epochs=40, model="tf_efficientnet_lite0", state="crashed", seed=3)
    return d


@pytest.fixture(scope="module")
def live(runs_dir, tiny_data):
    """A real training run in suggest mode, in its own process, for the whole module."""
    cfg = {**TINY, "data_dir": str(tiny_data), "num_epochs": 300, "early_stopping": False}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, json.dumps(cfg), str(runs_dir), "live_suggest"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    root = runs_dir / "live_suggest"
    _wait(lambda: (root / "metrics.jsonl").exists() or proc.poll() is not None, 180, "the live run's first epoch")
    assert proc.poll() is None, proc.communicate()[1]
    yield root
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(runs_dir):
    import socket

    import uvicorn

    from trainpilot.ui import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(runs_dir, token="browser-token-1234", allowed_hosts={"127.0.0.1", "localhost"})
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    _wait(lambda: srv.started, 30, "the dashboard server")
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="en-US")
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, errors


def test_runs_page_lists_runs(page, server, live, shots):
    page.goto(server + "/")
    page.wait_for_selector("tr[data-run='live_suggest'] .badge.running")
    names = page.eval_on_selector_all("#runs tbody tr", "rows => rows.map(r => r.dataset.run)")
    assert {"resnet18_baseline", "mobilenet_small", "effnet_crashed", "live_suggest"} <= set(names)
    page.fill("#f-text", "resnet18_base")
    assert page.eval_on_selector_all("#runs tbody tr", "rows => rows.length") == 1
    page.fill("#f-text", "")
    page.click("th[data-sort='run']")
    sorted_names = page.eval_on_selector_all("#runs tbody tr", "rows => rows.map(r => r.dataset.run)")
    assert sorted_names == sorted(sorted_names)
    page.screenshot(path=shots / "runs.png", full_page=True)


def test_the_suspect_labels_panel_shows_each_image(page, server, shots):
    page.goto(f"{server}/runs/resnet18_baseline")
    page.wait_for_selector("#suspects-panel:not([hidden]) #suspects figure img")
    drawn = page.eval_on_selector_all("#suspects img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert drawn == [True, True]
    assert "→ other" in page.inner_text("#suspects") and page.inner_text("#suspects-panel .count") == "2 / 2"
    assert page.eval_on_selector_all("#suspects-panel", "p => p.length") == 1
    page.goto(f"{server}/runs/mobilenet_small")  # no list: no panel
    page.wait_for_selector("#run-status.completed")
    assert page.is_hidden("#suspects-panel")
    page.goto(f"{server}/runs/resnet18_baseline")
    page.wait_for_selector("#suspects figure img")
    page.locator("#suspects-panel").screenshot(path=shots / "suspects.png")


def test_a_live_curve_gains_points_while_the_page_is_open(page, server, live):
    page.goto(f"{server}/runs/live_suggest")
    page.wait_for_selector("#chart-loss[data-points]")
    before = int(page.get_attribute("#chart-loss", "data-points"))
    _wait(lambda: int(page.get_attribute("#chart-loss", "data-points")) > before, 20, "a new point on the curve")


def test_an_adjustment_marker_and_its_card_appear_and_approve_applies_it(page, server, live, shots):
    from trainpilot.runs import Run

    page.goto(f"{server}/runs/live_suggest")
    card = page.wait_for_selector(".card[data-status='proposed']", timeout=90_000)
    assert "lr ÷2 · awaiting approval" in card.inner_text() and "adj_" not in card.query_selector(".title").inner_text()
    page.wait_for_function("document.querySelector('#chart-loss').dataset.markers >= 1")
    # hovering the marker shows the change in words
    page.evaluate("""() => { const u = window.trainpilotCharts().loss, r = u.over.getBoundingClientRect();
                             window._hover = [r.left + u.valToPos(%d, 'x') + 2, r.top + 20]; }"""
                  % Run.open(live).adjustments[0]["epoch"])
    x, y = page.evaluate("window._hover")
    page.mouse.move(x, y)
    page.wait_for_selector("#marker-tip:not([hidden])")
    assert "lr ÷2" in page.inner_text("#marker-tip") and "0.002" in page.inner_text("#marker-tip")
    page.screenshot(path=shots / "run_suggest.png", full_page=True)

    adj = next(a for a in Run.open(live).adjustments if a["status"] == "proposed")
    page.fill(f".decide[data-adj='{adj['adj_id']}'] .note", "halving is safe here")
    page.click(f".decide[data-adj='{adj['adj_id']}'] [data-decide='approve']")
    page.wait_for_selector(f"#card-{adj['adj_id']} .decided")
    assert "approved by dashboard" in page.inner_text(f"#card-{adj['adj_id']} .decided")
    decided_at = max(r.epoch for r in Run.open(live).rows)
    applied = _wait(lambda: (a := Run.open(live).adjustment(adj["adj_id"])) and a["status"] != "proposed" and a,
                    30, "the run to pick up the approval")
    assert applied["status"] in ("approved", "kept", "reverted") and applied["config_after"]["learning_rate"] == 0.001
    assert decided_at <= applied["approved_at_epoch"] <= decided_at + 2  # at the next epoch boundary
    assert Run.open(live).decision(adj["adj_id"])["by"] == "dashboard"
    page.wait_for_selector(f"#card-{adj['adj_id']}:not([data-status='proposed'])", timeout=15_000)
    assert page.locator(".decide").count() == 0  # decided once: no buttons any more


def test_the_new_run_form_shows_the_schemas_message(page, server, tiny_data, shots):
    from trainpilot.config import ConfigError, load_config

    page.goto(server + "/new")
    page.fill("#f-learning_rate", "-1")
    page.wait_for_selector(".field[data-key='learning_rate'].invalid")
    with pytest.raises(ConfigError) as cli:
        load_config(overrides=["learning_rate=-1"])
    assert page.inner_text(".field[data-key='learning_rate'] .err") == str(cli.value)
    assert "> 0" in page.inner_text(".field[data-key='learning_rate'] .bounds")
    page.fill("#f-data_dir", str(tiny_data))
    page.click("#preview-btn")
    page.wait_for_selector(".preview .cls img")
    assert page.locator(".preview .cls").count() == 3 and "monitor" in page.inner_text(".preview .recipe")
    page.screenshot(path=shots / "new_run.png", full_page=False)
    page.fill("#f-learning_rate", "0.002")
    page.wait_for_selector(".field[data-key='learning_rate']:not(.invalid)")


def test_zh_switch_and_the_dark_theme(page, server, live, shots):
    page.goto(f"{server}/runs/resnet18_baseline")
    page.wait_for_selector(".card")
    page.click("#lang-switch")
    page.wait_for_selector("text=参数调整")
    assert "训练记录" in page.inner_text(".topbar") and "已保留" in page.inner_text("#timeline")
    # the whole card reads in Chinese: why the change was kept and how it took effect too
    kept = page.locator("#timeline .card.kept", has_text="lr ÷2").inner_text()
    assert "不低于改动前的最佳值" in kept and "峰值学习率设为 0.0005" in kept and "说明" in kept
    assert "best.pt 推理 4 个视图（测试时翻转） · 类别先验校正 tau 0.75" in page.inner_text("#run-meta")
    page.screenshot(path=shots / "run_zh.png", full_page=True)
    page.click("#lang-switch")
    page.wait_for_selector("text=Adjustments")
    page.click("#theme-switch")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.wait_for_timeout(300)
    page.screenshot(path=shots / "run_dark.png", full_page=True)
    page.goto(f"{server}/runs/resnet18_baseline")
    page.wait_for_selector(".card")
    page.evaluate("localStorage.setItem('theme', 'light')")
    page.reload()
    page.wait_for_selector(".card.reverted")
    assert "best.pt scores 4 views (test-time flips) · class-prior tau 0.75" in page.inner_text("#run-meta")
    page.wait_for_timeout(300)
    page.screenshot(path=shots / "run.png", full_page=True)
    page.goto(f"{server}/compare?run=resnet18_baseline&run=mobilenet_small")
    page.wait_for_selector("#cmp-diff table")
    # each run's results side by side, the better test score of each column in bold
    bold = dict(page.eval_on_selector_all("#cmp-results tbody tr", "rows => rows.map(r => [r.dataset.run, "
                                          "[5, 6].map(i => r.children[i].querySelector('b')?.textContent || null)])"))
    assert bold == {"resnet18_baseline": [None, "0.9"], "mobilenet_small": ["0.93", None]}
    page.screenshot(path=shots / "compare.png", full_page=True)


def test_stop_button_stops_the_live_run_cleanly(page, server, live):
    from trainpilot.runs import Run

    page.goto(f"{server}/runs/live_suggest")
    page.wait_for_selector("#stop-btn:not([hidden])")
    page.on("dialog", lambda d: d.accept())
    page.click("#stop-btn")
    _wait(lambda: Run.open(live).status.state == "stopped", 60, "the run to stop")
    assert "SIGTERM" in Run.open(live).status.reason
    page.wait_for_selector("#run-status.stopped", timeout=10_000)
    page.wait_for_selector("#resume-btn:not([hidden])")
