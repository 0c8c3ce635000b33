"""Tests of trainpilot.reports: adjustment reports (markdown + JSON) and the HTML summary."""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

try:
    import trainpilot.reports  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trainpilot.reports import (FOOTER, SECTIONS, change_type, clean_number, fmt_value,
                                render_adjustment, sanitize_for_json, sections_for,
                                write_adjustment_report)
from trainpilot.reports.html import write_summary_html
from trainpilot.reports.markdown import demote_headings
from trainpilot.reports.plots import labels_renderable, plot_confusion_matrix

SEED_DIR = Path("/work/shared/seed")
CLASSES = ["划痕", "污点", "缺失", "变形", "异物"]
NOISY_LR, NOISY_NEW_LR = 9.999999999999999e-05, 1.9999999999999998e-05
WEIGHTS = {"划痕": 0.62, "污点": 0.85, "缺失": 1.43, "变形": 1.9, "异物": 0.77}


def _seed_config(name: str) -> dict:
    """The seed run's config (a copy of the file when it is not on this machine)."""
    path = SEED_DIR / name
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    cfg = {"data_dir": "E:\\PIC_SLM\\TEST\\OUTPUT2\\dataset", "model_name": "MobileNetV3", "num_epochs": 50,
           "batch_size": 32, "learning_rate": NOISY_LR, "optimizer": "Adam", "use_pretrained": True,
           "use_class_weights": False, "weight_strategy": "balanced", "weight_decay": NOISY_LR,
           "lr_scheduler": "StepLR", "dropout_rate": 0.0, "warmup_ratio": 0.05, "min_lr": 1e-06,
           "label_smoothing_enabled": False, "label_smoothing": 0.1, "model_ema_decay": 0.9999,
           "gradient_accumulation_enabled": True, "gradient_accumulation_steps": 4,
           "static_loss_scale": 128.0, "class_weights": {c: 1.0 for c in CLASSES}}
    if name.startswith("adjusted"):
        cfg.update(learning_rate=NOISY_NEW_LR, use_class_weights=True, label_smoothing_enabled=True,
                   gradient_accumulation_steps=1)
    return cfg


def _history(epochs: int = 2, nan_epoch: int | None = None) -> list[dict]:
    out = []
    for e in range(1, epochs + 1):
        bad = e == nan_epoch
        tl = math.nan if bad else round(2.0 / e, 4)
        vl, va = 1.9 - 0.1 * e, 0.1 + 0.05 * e
        out.append({"timestamp": 1757731876.175308 + e, "epoch": e, "phase": "train",
                    "session_id": "MobileNetV3_20250913_104848", "loss": tl, "accuracy": 0.2 + 0.1 * e,
                    "lr": NOISY_LR, "images_per_s": 300.0, "epoch_seconds": 10.2,
                    "grad_norm_mean": 1.3, "grad_norm_max": "inf" if bad else 5.0, "nonfinite_steps": 0})
        per = {c: {"precision": 0.2, "recall": 0.1 * (i + 1), "f1": 0.15, "support": 6} for i, c in enumerate(CLASSES)}
        cm = [[(3 if i == j else 1) for j in range(5)] for i in range(5)]
        out.append({"timestamp": 1757731876.175308 + e, "epoch": e, "phase": "val",
                    "session_id": "MobileNetV3_20250913_104848", "loss": vl, "accuracy": va,
                    "macro_f1": math.nan if bad else va - 0.02, "precision": va, "recall": va,
                    "per_class": per, "confusion_matrix": cm, "class_names": CLASSES, "train_loss": tl,
                    "train_accuracy": 0.2 + 0.1 * e, "val_loss": vl, "val_accuracy": va,
                    "val_macro_f1": va - 0.02, "lr": NOISY_LR, "ema_loss": None, "ema_accuracy": None,
                    "ema_macro_f1": None, "epoch_seconds": 11.0})
    return out


def _analysis_text() -> str:
    parts = ["## 配置评估", "", "当前配置整体合理，但存在几个关键问题：",
             "- 梯度累积步数为4，但batch_size为32，实际等效batch_size为128，可能过大", "",
             "## 训练状态分析", "", "**严重欠拟合状态**：验证准确率仅16.7%。", "", "```json",
             '{"suggestions": [{"parameter": "learning_rate", "suggested_value": 0.00002}]}', "```", ""]
    parts += [f"第{i}点：验证损失与训练损失的差距说明模型仍在学习基础特征，建议降低学习率并启用类别权重。" for i in range(120)]
    parts += ["", "分析结束 END-OF-ANALYSIS"]
    text = "\n".join(parts)
    assert len(text) > 5000
    return text


def _seed_record(**over) -> dict:
    before, after = _seed_config("original_config.json"), _seed_config("adjusted_config.json")
    after["class_weights"] = dict(WEIGHTS)
    rec = {
        "adj_id": "adj_20250913_105149_3f2a", "session_id": "MobileNetV3_20250913_104848",
        "created_at": "2025-09-13T10:51:49.123456", "epoch": 2, "advisor": "llm",
        "advisor_detail": {"backend": "openai-compatible", "model": "smollm2", "latency_s": 1.2,
                           "prompt_tokens": 800, "completion_tokens": 120, "fallback": None},
        "mode": "auto", "trigger": "scheduled",
        "reason": "验证准确率停滞在随机水平，学习率偏高且类别不平衡。",
        "diagnosis": {"states": [{"state": "underfitting", "severity": 0.8,
                                  "evidence": ["val_accuracy 0.2 after 2 epochs (chance level 0.2)"]}],
                      "features": {"gap": 0.30000000000000004, "val_acc": 0.2}},
        "analysis_text": _analysis_text(), "raw_output": _analysis_text(),
        "changes": [
            {"key": "learning_rate", "old": NOISY_LR, "new": NOISY_NEW_LR, "reason": "lower the lr",
             "apply": "live", "source": "advisor"},
            {"key": "use_class_weights", "old": False, "new": True, "reason": "imbalanced classes",
             "apply": "restart", "source": "advisor"},
            {"key": "label_smoothing_enabled", "old": False, "new": True, "reason": "regularise",
             "apply": "live", "source": "advisor"},
            {"key": "gradient_accumulation_steps", "old": 4, "new": 1, "reason": "smaller effective batch",
             "apply": "live", "source": "advisor"},
        ],
        "rejected": [], "status": "applied", "outcome": None,
        "config_before": before, "config_after": after,
    }
    rec.update(over)
    return rec


def _headings(md: str) -> list[str]:
    """Top-level (# and ##) headings outside code fences."""
    out, fenced = [], None
    for line in md.splitlines():
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m:
            fenced = None if fenced == m.group(1) else (fenced or m.group(1))
        elif fenced is None and re.match(r"^#{1,2} ", line):
            out.append(line.rstrip())
    return out


def _block(md: str, key: str) -> str:
    start = md.index(f"\n### {key}\n")
    return md[start:md.index("\n\n", start + 1)]


# --------------------------------------------------------------------------- fmt

def test_clean_number_and_fmt_value():
    assert repr(clean_number(NOISY_LR)) == "0.0001"
    assert repr(clean_number(NOISY_NEW_LR)) == "2e-05"
    assert clean_number(4) == 4 and isinstance(clean_number(4), int)
    assert fmt_value(True) == "true" and fmt_value(False) == "false" and fmt_value(None) == "null"
    assert fmt_value(0.1 + 0.2) == "0.3" and fmt_value("abc") == "abc" and fmt_value(float("nan")) == "nan"


def test_change_type_words():
    assert change_type(False, True, "zh") == "启用" and change_type(True, False, "zh") == "禁用"
    assert change_type(False, True, "en") == "enabled" and change_type(True, False, "en") == "disabled"
    assert change_type(NOISY_LR, NOISY_NEW_LR, "zh") == "减少" and change_type(1, 4, "zh") == "增加"
    assert change_type("Adam", "SGD", "zh") == "修改" and change_type("StepLR", "Cosine", "en") == "changed"


def test_sanitize_for_json_is_strict_and_clean():
    obj = sanitize_for_json({"a": [math.nan, math.inf, -math.inf, NOISY_LR], 3: (1, 2.0)})
    text = json.dumps(obj, allow_nan=False)
    assert obj == {"a": ["nan", "inf", "-inf", 0.0001], "3": [1, 2.0]}
    assert "9.999999999999999e-05" not in text


# --------------------------------------------------------------------------- structure

@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("advisor", ["rules", "llm", "hybrid"])
def test_sections_in_order(lang, advisor):
    md = render_adjustment(_seed_record(advisor=advisor), _history(), lang)
    assert _headings(md) == sections_for(lang, advisor)
    assert md.rstrip().splitlines()[-1] == FOOTER[lang]


def test_sections_constant_matches_seed_headings():
    zh = SECTIONS["zh"]
    seed = ["# 智能训练参数微调报告", "## 📋 调整原因", "## 🔧 配置变更详情", "## 🤖 LLM分析结果",
            "## 📊 训练指标", "## ⚙️ 配置对比", "## 📝 报告总结"]
    assert [h for h in zh if h in seed] == seed
    assert zh.index("## 🩺 诊断") == zh.index("## 📋 调整原因") + 1
    assert zh.index("## 🚫 被拒绝的建议") == zh.index("## 🔧 配置变更详情") + 1
    assert zh.index("## 📈 调整效果") == zh.index("## 📝 报告总结") - 1
    assert SECTIONS["en"][0] == "# Parameter Tuning Report" and len(SECTIONS["en"]) == len(zh)
    assert sections_for("zh", "rules")[5] == "## 🤖 规则引擎分析结果"
    assert sections_for("zh", "hybrid")[5] == "## 🤖 混合分析结果"


# --------------------------------------------------------------------------- seed scenario

def test_seed_scenario_quirks_fixed(tmp_path):
    rec = _seed_record()
    md_path, json_path = write_adjustment_report(tmp_path, rec, _history(), "zh")
    md, js = md_path.read_text(encoding="utf-8"), json_path.read_text(encoding="utf-8")
    for text in (md, js):  # float noise
        assert "9.999999999999999e-05" not in text and "1.9999999999999998e-05" not in text
    lr = _block(md, "learning_rate")
    assert "`0.0001`" in lr and "`2e-05`" in lr and "减少" in lr
    for key in ("use_class_weights", "label_smoothing_enabled"):  # bool changes
        block = _block(md, key)
        assert "- **变更类型**: 启用" in block and "增加" not in block
        assert "`false`" in block and "`true`" in block
    assert "- **变更类型**: 减少" in _block(md, "gradient_accumulation_steps")
    text = rec["analysis_text"]  # never truncated
    assert demote_headings(text) in md and "END-OF-ANALYSIS" in md
    assert "\n#### 配置评估\n" in md and "\n## 配置评估" not in md
    # history table instead of one raw record with 6-decimal timestamps
    assert "| 轮次 | 训练损失 | 训练准确率 | 验证损失 | 验证准确率 | 验证宏F1 | 学习率 |" in md
    assert "### 当前训练状态" in md and "1757731876" not in md and "| timestamp |" not in md
    assert re.search(r"\| \*\*2\*\* \| 1\.0000 \|", md)
    for v in ("0.62", "1.43", "1.9", "0.77"):  # class weights from the config
        assert f"| {v} |" in md
    assert "**报告ID**: report_20250913_105149_3f2a" in md and "**调整ID**: adj_20250913_105149_3f2a" in md
    assert "本次调整共修改了 **4** 个参数" in md and "调整基于LLM分析结果" in md
    data = json.loads(js, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["language"] == "zh" and data["config_before"]["learning_rate"] == 0.0001
    assert data["changes"][0]["new"] == 2e-05 and data["config_after"]["class_weights"] == WEIGHTS


def test_seed_scenario_english():
    md = render_adjustment(_seed_record(), _history(), "en")
    assert "- **Change type**: enabled" in _block(md, "use_class_weights")
    assert "- **Change type**: decreased" in _block(md, "learning_rate")
    assert "- **Original value**: `0.0001`" in md and "| Epoch | Train loss |" in md
    assert "9.999999999999999e-05" not in md


def test_overwrite_same_files_when_outcome_arrives(tmp_path):
    rec = _seed_record()
    first = write_adjustment_report(tmp_path, rec, _history(), "en")
    assert first[0].name == "parameter_tuning_report_20250913_105149_adj_20250913_105149_3f2a.md"
    assert "Pending" in first[0].read_text(encoding="utf-8")
    rec2 = _seed_record(status="kept", outcome={"decision": "kept", "metric": "val_macro_f1", "before": 0.61,
                                                "after": 0.74, "delta": 0.13, "noise_margin": 0.02,
                                                "evaluated_at_epoch": 5})
    second = write_adjustment_report(tmp_path, rec2, _history(5), "en")
    assert second == first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first)
    md = second[0].read_text(encoding="utf-8")
    assert "✅ Kept" in md and "0.61 → 0.74" in md and "+0.13" in md and "Pending" not in md
    assert json.loads(second[1].read_text(encoding="utf-8"))["outcome"]["decision"] == "kept"


def test_pending_rejected_autofix_and_fallback():
    fallback = "LLM backend openai-compatible failed: timeout after 60 s; used the rule engine for this round"
    rec = _seed_record(advisor="rules", evaluate_after_epochs=3,
                       advisor_detail={"fallback": fallback},
                       rejected=[{"key": "data_dir", "value": "/etc", "reason": "data_dir is not tunable"}])
    rec["changes"].append({"key": "gradient_accumulation_enabled", "old": True, "new": False,
                           "reason": "steps is 1, so accumulation is off", "apply": "live", "source": "auto_fix"})
    en = render_adjustment(rec, [], "en")
    assert "## 🤖 Rule engine analysis" in en and fallback in en
    assert "⏳ Pending — evaluated after 3 epochs" in en
    assert "**data_dir** = `/etc`" in en and "data_dir is not tunable" in en
    assert "steps is 1, so accumulation is off" in en and "(1 of them automatic consistency fixes)" in en
    assert "No training metrics yet." in en
    zh = render_adjustment(rec, [], "zh")
    assert "## 🤖 规则引擎分析结果" in zh and "将在 3 个轮次后评估" in zh and "- **变更类型**: 禁用" in zh


def test_nan_in_history_and_record(tmp_path):
    rec = _seed_record(diagnosis={"states": [], "features": {"gap": math.nan, "lr": math.inf}})
    md_path, json_path = write_adjustment_report(tmp_path, rec, _history(3, nan_epoch=2), "zh")
    md = md_path.read_text(encoding="utf-8")
    assert "nan" in md
    json.loads(json_path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(c))


# --------------------------------------------------------------------------- HTML summary

def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_summary_html_self_contained(tmp_path, lang):
    _write_jsonl(tmp_path / "metrics.jsonl", _history(4, nan_epoch=3))
    rec = _seed_record(advisor_detail={"fallback": "LLM at http://127.0.0.1:8080/v1 failed"})
    rec["changes"].append({"key": "note", "old": "", "new": "see https://example.com", "source": "advisor"})
    later = _seed_record(status="kept", outcome={"decision": "kept", "metric": "val_macro_f1", "before": 0.2,
                                                 "after": 0.3, "delta": 0.1, "noise_margin": 0.02,
                                                 "evaluated_at_epoch": 4})
    later["changes"] = rec["changes"]
    _write_jsonl(tmp_path / "adjustments.jsonl", [rec, later])
    out = write_summary_html(tmp_path, lang)
    assert out == tmp_path / "reports" / "summary.html"
    page = out.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') >= 4
    assert "http://" not in page and "https://" not in page and "src=\"http" not in page
    assert page.count("adj_20250913_105149_3f2a</code>") == 1  # the later line superseded the first
    assert "0.2 → 0.3" in page and "learning_rate" in page
    if not labels_renderable(CLASSES):
        assert "划痕" in page  # index -> name legend table


def test_summary_html_without_adjustments_or_metrics(tmp_path):
    _write_jsonl(tmp_path / "metrics.jsonl", _history(2))
    page = write_summary_html(tmp_path).read_text(encoding="utf-8")
    assert 'data:image/png;base64,' in page and "No adjustments in this run." in page
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "adjustments.jsonl").write_text("", encoding="utf-8")
    page = write_summary_html(empty, "zh").read_text(encoding="utf-8")
    assert "暂无训练指标" in page and "http" not in page


def test_plot_confusion_matrix_writes_png(tmp_path):
    path = plot_confusion_matrix([[5, 1], [2, 7]], ["cat", "dog"], tmp_path / "cm" / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = plot_confusion_matrix([[5, 1], [2, 7]], ["划痕", "污点"], tmp_path / "cm_zh.png")
    assert path.stat().st_size > 0


def test_every_message_says_the_same_in_both_languages():
    """Each catalogue sentence (the controller's and the engine's) fills the same fields in English and Chinese,
    so a record kept with its key renders in either language."""
    import string

    import trainpilot.tuning.messages  # noqa: F401  (fills the catalogue, the engine's notes included)
    from trainpilot.text import CATALOGUE

    fields = lambda s: {f for _, f, _, _ in string.Formatter().parse(s) if f}  # noqa: E731
    assert {"note.reset", "note.schedule_again", "outcome.within_noise"} <= set(CATALOGUE)
    assert not [k for k, (en, zh) in CATALOGUE.items() if fields(en) != fields(zh)]
