"""Intelligent training with a real LLM: `trainpilot llm check` and a full run with advisor=llm,
through a real llama_cpp.server serving SmolLM2-135M. The model is tiny and its advice is often
poor or malformed: these tests check that the run finishes and that every suggestion is applied
or rejected with its reason, and that the API key never lands in a file."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from conftest import TINY
from trainpilot.engine.rundir import read_jsonl
from llm_server import free_port, running_llama_server, smollm2_or_skip

pytestmark = pytest.mark.llm

GGUF = smollm2_or_skip()


@pytest.fixture(scope="module")
def server_url():
    # the advisor prompt (config, full history, diagnosis, allowed actions) needs a 4k context
    with running_llama_server(GGUF, alias="smollm2", n_ctx=4096, n_threads=2) as url:
        yield url


def _cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "trainpilot", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_llm_check_against_the_real_server(server_url):
    result = _cli("llm", "check", "--base-url", server_url, "--model", "smollm2")
    assert result.returncode in (0, 1), result.stderr  # 1: reachable, but the reply was not a usable proposal
    out = result.stdout
    assert "reachable" in out and "yes" in out and "smollm2" in out
    assert "structured output" in out


def test_llm_check_on_a_dead_server_is_one_line():
    result = _cli("llm", "check", "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--model", "x",
                  env={"TRAINPILOT_TEST": "1"})
    assert result.returncode == 2 and result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_full_run_with_the_llm_advisor(server_url, tiny_data, tmp_path):
    import trainpilot

    key = "sk-test-" + secrets.token_hex(12)
    os.environ["TP_TEST_LLM_KEY"] = key
    try:
        cfg = {**TINY, "data_dir": str(tiny_data), "num_epochs": 4, "intelligent_training": {
            "enabled": True, "advisor": "llm", "report_language": "en", "min_epochs_before_analysis": 1,
            "analysis_interval": 1, "evaluation_window": 1, "cooldown_epochs": 0, "divergence_threshold": 100.0,
            "llm": {"base_url": server_url, "model": "smollm2", "api_key_env": "TP_TEST_LLM_KEY",
                    "temperature": 0.0, "max_tokens": 384, "timeout": 300.0, "max_retries": 0}}}
        run = trainpilot.train(cfg, runs_dir=tmp_path, quiet=True)
    finally:
        del os.environ["TP_TEST_LLM_KEY"]
    assert run.summary["epochs"] == 4
    records = {}
    for r in read_jsonl(run.dir / "adjustments.jsonl"):
        records[r["adj_id"]] = r
    llm_rounds = [r for r in records.values() if r["advisor_detail"].get("backend")]
    assert llm_rounds, "no round reached the LLM"
    for r in llm_rounds:
        detail = r["advisor_detail"]
        assert detail.get("model") or detail.get("fallback")
        if not detail.get("fallback"):
            assert detail["latency_s"] > 0 and detail.get("completion_tokens")
    reports = {p.name: p.read_text(encoding="utf-8") for p in (run.dir / "reports").glob("*.md")}
    for r in llm_rounds:
        if not (r["changes"] or r["rejected"] or r["status"] in ("recorded", "stale")):
            continue
        (text,) = [t for name, t in reports.items() if r["adj_id"] in name]
        raw = r["raw_output"].strip()
        assert all(line.strip() in text for line in raw.splitlines() if line.strip()), "the model's reply is kept in full"
        for change in r["changes"]:
            assert f"### {change['key']}" in text
        for rej in r["rejected"]:
            assert rej["key"] in text and rej["reason"].split(";")[0][:40] in text
    for path in run.dir.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"the API key leaked into {path}"


def test_run_with_a_dead_llm_server_falls_back_and_finishes(tiny_data, tmp_path):
    import trainpilot

    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = {**TINY, "data_dir": str(tiny_data), "num_epochs": 2, "intelligent_training": {
        "enabled": True, "advisor": "llm", "min_epochs_before_analysis": 1, "analysis_interval": 1,
        "evaluation_window": 1, "divergence_threshold": 100.0, "llm": {"base_url": url, "model": "x", "timeout": 2.0, "max_retries": 1}}}
    run = trainpilot.train(cfg, runs_dir=tmp_path, quiet=True)
    recs = read_jsonl(run.dir / "adjustments.jsonl")
    assert recs and all("fallback" in r["advisor_detail"] for r in recs if r["advisor_detail"].get("backend"))
    fallback = next(r["advisor_detail"]["fallback"] for r in recs if r["advisor_detail"].get("fallback"))
    assert "127.0.0.1" in fallback and "rule engine" in fallback
    assert json.loads((run.dir / "summary.json").read_text())["epochs"] == 2
