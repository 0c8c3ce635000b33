"""The dashboard's speed, in one run (about 2 minutes on 2 CPU cores):

1. the runs page with 200 runs, and a run page with 500 epochs and 50 adjustments (run directories
   synthesised in the store's format): server time of the JSON route, cold and warm, and time to first
   render in Chromium (navigation start -> every row / every point and card on screen); target < 1 s;
2. live latency: a val record appended to metrics.jsonl -> the point on screen; target < 2 s;
3. the dashboard's cost to training: mean epoch time of the same small run (epochs of a few seconds) trained
   alone and with `trainpilot train --ui` and a page open on it (runs interleaved A/B/A/B); target < 2%.
   The cost is one page update per epoch (about 50 ms of CPU, server and browser together), so it is a
   smaller share of longer epochs.

    OMP_NUM_THREADS=1 python bench/ui.py [--skip-training]
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_runs import adjustment, epoch_records, make_run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(runs_dir: Path, warm: bool = False) -> tuple[str, object]:
    import uvicorn

    from trainpilot.ui import create_app

    port = free_port()
    app = create_app(runs_dir)
    if warm:  # as `trainpilot ui` does at start
        from trainpilot.ui.api import row_of

        app.state.ui.warm(row_of)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", srv


def timed_get(url: str) -> float:
    import urllib.request

    start = time.perf_counter()
    with urllib.request.urlopen(url) as r:
        r.read()
    return time.perf_counter() - start


def synthesise(runs_dir: Path) -> None:
    for i in range(200):
        adjs = [adjustment(e, s) for e, s in ((5, "kept"), (9, "no_change"), (13, "reverted"))]
        make_run(runs_dir, f"run_{i:03d}", epochs=40, adjustments=adjs, seed=i,
                 state="completed" if i % 7 else "stopped", model=("resnet18", "mobilenetv3_small_100")[i % 2])
    statuses = ("kept", "reverted", "no_change", "kept", "reverted")
    make_run(runs_dir, "long_run", epochs=500, seed=7,
             adjustments=[adjustment(5 + 10 * k, statuses[k % 5], adj_id=f"adj_{k:03d}") for k in range(50)])
    make_run(runs_dir, "live", epochs=3, state="running", seed=9, num_epochs=100)


def page_benchmarks(base: str, runs_dir: Path) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    out["runs_server_first_s"] = timed_get(base + "/api/runs")  # nothing read yet (no warm-up)
    out["runs_server_warm_s"] = statistics.median(timed_get(base + "/api/runs") for _ in range(3))
    out["run_server_s"] = statistics.median(timed_get(base + "/api/runs/long_run") for _ in range(3))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(base + "/new")  # warm the browser's own start-up out of the numbers
        # time to first render: navigation start -> the page's "trainpilot-rendered" mark (every row, or every
        # point, card, heatmap row and the config drawn), as the browser's own clock measures it
        rendered = "performance.getEntriesByName('trainpilot-rendered')[0].startTime / 1000"
        for key, url, done in (("runs", "/", "document.querySelectorAll('#runs tbody tr').length === 202"),
                               ("run", "/runs/long_run", "document.querySelector('#chart-loss').dataset.points === '500' "
                                                         "&& document.querySelectorAll('.card').length >= 40")):
            renders = []
            for _ in range(5):
                page.goto(base + url)
                page.wait_for_function(f"({done}) && performance.getEntriesByName('trainpilot-rendered').length",
                                       timeout=30_000)
                renders.append(page.evaluate(rendered))
            out[f"{key}_render_s"] = statistics.median(renders)

        page.goto(base + "/runs/live")
        page.wait_for_function("document.querySelector('#chart-loss').dataset.points === '3'")
        import random

        rng, latencies = random.Random(0), []
        for epoch in range(4, 12):
            time.sleep(rng.uniform(0.3, 1.2))  # epochs end at any moment of the server's poll
            with open(runs_dir / "live" / "metrics.jsonl", "a", encoding="utf-8") as f:
                written = time.perf_counter()
                f.write("".join(json.dumps(r) + "\n" for r in epoch_records(epoch, ["a", "b", "c", "d"], rng, time.time())))
            page.wait_for_function(f"document.querySelector('#chart-loss').dataset.points === '{epoch}'", polling=20)
            latencies.append(time.perf_counter() - written)
        out["live_latency_median_s"] = statistics.median(latencies)
        out["live_latency_max_s"] = max(latencies)
        browser.close()
    return out


def training_overhead(work: Path) -> dict:
    """Mean epoch seconds alone vs with `--ui` and a page open, interleaved."""
    from playwright.sync_api import sync_playwright

    from trainpilot.data.synthetic import make_defect_dataset

    # epochs of a few seconds: the dashboard's cost is per epoch (one update), so shorter epochs show it larger
    data = make_defect_dataset(work / "data", per_class=100, image_size=112, seed=1, classes=("a", "b", "c"),
                               splits={"train": 0.7, "val": 0.3})
    cfg = {"model_name": "mobilenetv3_small_050", "image_size": 112, "batch_size": 16, "num_epochs": 12,
           "mixed_precision": False, "use_tensorboard": False, "seed": 0, "recipe": "off", "early_stopping": False,
           "intelligent_training": {"enabled": True, "mode": "auto"}, "data_dir": str(data)}
    sets = [a for k, v in cfg.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    results: dict[str, list[float]] = {"alone": [], "with_ui": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for i, mode in enumerate(("alone", "with_ui", "alone", "with_ui")):
            name, port = f"{mode}_{i}", free_port()
            env = {**os.environ, "OMP_NUM_THREADS": "1", "TRAINPILOT_UI_PORT": str(port)}
            cmd = [sys.executable, "-m", "trainpilot", "train", "--quiet", "--runs-dir", str(work / "runs"),
                   "--name", name, *sets] + (["--ui"] if mode == "with_ui" else [])
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            page, opened = None, 0.0
            if mode == "with_ui":
                page = browser.new_page()
                deadline = time.time() + 120
                while time.time() < deadline:
                    try:
                        page.goto(f"http://127.0.0.1:{port}/runs/{name}", timeout=5_000)
                        if page.query_selector("#chart-loss"):
                            opened = time.time()
                            break
                    except Exception:  # noqa: BLE001 - not up yet
                        pass
                    time.sleep(0.5)
            proc.wait(timeout=600)
            if proc.returncode:
                raise RuntimeError(proc.stderr.read())
            if page is not None:
                page.close()
            from trainpilot.runs import Run

            rows = Run.open(work / "runs" / name).rows[2:]  # the first epochs warm up either way
            if mode == "with_ui":  # the epochs that ran while the page was open
                rows = [r for r in rows if r.timestamp and r.timestamp - (r.epoch_seconds or 0) > opened]
            seconds = [r.epoch_seconds for r in rows if r.epoch_seconds]
            results[mode].append(statistics.mean(seconds))
        browser.close()
    alone, with_ui = statistics.mean(results["alone"]), statistics.mean(results["with_ui"])
    return {"epoch_s_alone": alone, "epoch_s_with_ui": with_ui, "overhead_pct": 100 * (with_ui / alone - 1),
            "runs": results}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_ui_") as tmp:
        work = Path(tmp)
        runs_dir = work / "store"
        t = time.perf_counter()
        synthesise(runs_dir)
        print(f"synthesised 200 runs + a 500-epoch run with 50 adjustments in {time.perf_counter() - t:.1f} s", flush=True)
        base, srv = serve(runs_dir)
        pages = page_benchmarks(base, runs_dir)
        srv.should_exit = True
        for k, v in pages.items():
            print(f"{k:28s} {v:.3f} s", flush=True)
        if "--skip-training" not in sys.argv:
            over = training_overhead(work)
            print(f"{'epoch time alone':28s} {over['epoch_s_alone']:.3f} s  (runs: "
                  f"{', '.join(f'{x:.3f}' for x in over['runs']['alone'])})")
            print(f"{'epoch time with --ui + page':28s} {over['epoch_s_with_ui']:.3f} s  (runs: "
                  f"{', '.join(f'{x:.3f}' for x in over['runs']['with_ui'])})")
            print(f"{'dashboard overhead':28s} {over['overhead_pct']:+.1f} %")


if __name__ == "__main__":
    main()
