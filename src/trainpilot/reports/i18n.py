"""Report strings, one dict per language (``zh`` and ``en``).

The zh headings are those of the report our users already know; the en report
has the same structure. :data:`SECTIONS` lists the headings in document order
(with the analysis heading of the ``llm`` advisor; use :func:`sections_for` for
another advisor).
"""
from __future__ import annotations

LANGS = ("zh", "en")

STRINGS: dict[str, dict[str, str]] = {
    "zh": {
        # headings
        "title": "# 智能训练参数微调报告",
        "h_reason": "## 📋 调整原因",
        "h_diagnosis": "## 🩺 诊断",
        "h_changes": "## 🔧 配置变更详情",
        "h_rejected": "## 🚫 被拒绝的建议",
        "h_analysis_rules": "## 🤖 规则引擎分析结果",
        "h_analysis_llm": "## 🤖 LLM分析结果",
        "h_analysis_hybrid": "## 🤖 混合分析结果",
        "h_metrics": "## 📊 训练指标",
        "h_config": "## ⚙️ 配置对比",
        "h_outcome": "## 📈 调整效果",
        "h_summary": "## 📝 报告总结",
        "footer": "*此报告由智能训练系统自动生成*",
        # header fields
        "generated_at": "生成时间", "report_id": "报告ID", "session_id": "会话ID",
        "adj_id": "调整ID", "epoch": "训练轮次", "mode": "调整模式", "trigger": "触发方式",
        "trigger_scheduled": "定期检查", "trigger_emergency": "紧急触发", "trigger_collapse": "多数类塌缩",
        "mode_auto": "自动应用", "mode_suggest": "仅建议（需批准）", "mode_off": "仅记录",
        # diagnosis
        "severity": "严重程度", "no_diagnosis": "未发现需要处理的训练问题。",
        "features": "诊断特征",
        # changes
        "old": "原始值", "new": "新值", "kind": "变更类型", "change_reason": "调整理由",
        "apply": "生效方式", "apply_live": "立即生效（训练中热更新）",
        "apply_restart": "需重新启动训练后生效", "auto_fix_tag": "（自动一致性修正）",
        "no_changes": "本次没有配置变更。",
        "class_weights": "类别权重", "class": "类别", "weight": "权重", "support": "样本数",
        "class_weights_on": "已启用类别权重", "class_weights_off": "未启用类别权重（下列权重当前不参与训练）",
        # rejected
        "no_rejected": "没有被拒绝的建议。", "rejected_value": "建议值", "rejected_reason": "拒绝原因",
        "auto_fixes": "自动一致性修正", "no_auto_fixes": "没有自动一致性修正。",
        # analysis
        "advisor_rules": "规则引擎", "advisor_llm": "LLM", "advisor_hybrid": "混合（规则引擎 + LLM）",
        "analysis_reason": "分析原因", "analysis_detail": "详细分析", "advisor_info": "分析器",
        "fallback": "⚠️ 回退", "no_analysis": "（分析器未给出文字分析）", "raw_output": "原始输出",
        "backend": "后端", "model": "模型", "latency": "耗时", "tokens": "令牌数",
        # metrics
        "history": "训练历史", "current_state": "当前训练状态", "metric": "指标", "value": "数值",
        "col_epoch": "轮次", "col_train_loss": "训练损失", "col_train_acc": "训练准确率",
        "col_val_loss": "验证损失", "col_val_acc": "验证准确率", "col_val_f1": "验证宏F1",
        "col_lr": "学习率", "no_history": "暂无训练指标。",
        "history_tail": "（仅显示最近 {n} 个轮次，共 {total} 个）",
        "m_precision": "验证精确率", "m_recall": "验证召回率", "m_grad_mean": "平均梯度范数",
        "m_grad_max": "最大梯度范数", "m_nonfinite": "非有限值步数", "m_ips": "吞吐量 (图像/秒)",
        "m_epoch_s": "轮次耗时 (秒)", "m_ema_loss": "EMA 验证损失", "m_ema_acc": "EMA 验证准确率",
        "m_ema_f1": "EMA 验证宏F1", "per_class": "各类别指标", "precision": "精确率",
        "recall": "召回率", "f1": "F1",
        # config
        "config_before": "### 原始配置", "config_after": "### 调整后配置",
        # outcome
        "outcome_kept": "✅ 已保留", "outcome_reverted": "↩️ 已回滚",
        "prior_corrected": "（扣除训练类别先验后）",
        "outcome_line": "{metric}: {before} → {after}（变化 {delta}，噪声容限 {margin}），于第 {epoch} 轮评估",
        "outcome_line_best": "{metric}: {before} → {after}（变化 {delta}；对未出故障的训练所做的改进须达到改动前的最佳值），于第 {epoch} 轮评估",
        "pending_n": "⏳ 待评估 — 将在 {n} 个轮次后评估", "pending": "⏳ 待评估 — 将在后续轮次中评估",
        "outcome_not_applied": "本次调整未被应用，因此不评估效果（状态：{status}）。",
        # summary
        "sum_changes": "本次调整共修改了 **{n}** 个参数", "sum_auto": "（其中 {n} 个为自动一致性修正）",
        "sum_rejected": "被拒绝的建议: **{n}** 条", "sum_advisor": "调整基于{advisor}分析结果",
        "sum_status": "状态", "sum_generated": "报告生成时间",
        "status_applied": "已应用", "status_proposed": "已提出（等待批准）", "status_approved": "已批准",
        "status_rejected_by_user": "已被用户拒绝", "status_recorded": "仅记录（未应用）",
        "status_kept": "已保留", "status_reverted": "已回滚", "status_stale": "已过期（未应用）",
        # html summary
        "html_title": "训练总结", "html_run": "运行目录", "html_generated": "生成时间",
        "html_overview": "概览", "html_epochs": "轮次", "html_best_f1": "最佳验证宏F1",
        "html_final_acc": "最终验证准确率", "html_adjustments": "参数调整",
        "html_suspects": "疑似标错的训练图像", "html_image": "图像",
        "html_file": "文件", "html_label": "标注类别", "html_suggested": "模型判断",
        "html_p_label": "标注类别概率", "html_p_suggested": "判断类别概率",
        "html_suspects_note": "best.pt 确信以下训练图像属于另一类别（共 {n} 张，列出前 {shown} 张，最可疑的在前）；"
                              "完整列表见 reports/suspect_labels.csv。请人工核对，系统不会改动标注。",
        "html_suspects_weak": "模型与超过三分之一的训练标注相矛盾：它尚未学会这些类别，此列表对标注的参考价值很低。请先延长训练。",
        "html_loss": "损失曲线", "html_acc": "准确率与宏F1", "html_lr": "学习率",
        "html_cm": "混淆矩阵（最后一轮）", "html_cm_legend": "坐标轴编号对应的类别",
        "html_timeline": "参数调整时间线", "html_changes": "变更", "html_status": "状态",
        "html_outcome": "效果", "html_index": "编号", "html_none": "无", "html_at_epoch": "第 {e} 轮",
        "html_no_metrics": "暂无训练指标。", "html_no_adjustments": "本次运行没有参数调整。",
        "plot_pred": "预测类别", "plot_true": "真实类别", "plot_train": "训练", "plot_val": "验证",
    },
    "en": {
        "title": "# Parameter Tuning Report",
        "h_reason": "## 📋 Reason",
        "h_diagnosis": "## 🩺 Diagnosis",
        "h_changes": "## 🔧 Configuration changes",
        "h_rejected": "## 🚫 Rejected proposals",
        "h_analysis_rules": "## 🤖 Rule engine analysis",
        "h_analysis_llm": "## 🤖 LLM analysis",
        "h_analysis_hybrid": "## 🤖 Hybrid analysis",
        "h_metrics": "## 📊 Training metrics",
        "h_config": "## ⚙️ Configuration comparison",
        "h_outcome": "## 📈 Outcome",
        "h_summary": "## 📝 Summary",
        "footer": "*This report was generated automatically by the intelligent training system*",
        "generated_at": "Generated at", "report_id": "Report ID", "session_id": "Session ID",
        "adj_id": "Adjustment ID", "epoch": "Epoch", "mode": "Mode", "trigger": "Trigger",
        "trigger_scheduled": "scheduled check", "trigger_emergency": "emergency", "trigger_collapse": "collapse onto the majority class",
        "mode_auto": "auto (applied automatically)", "mode_suggest": "suggest (needs approval)",
        "mode_off": "off (recorded only)",
        "severity": "severity", "no_diagnosis": "No training problem that needs action was found.",
        "features": "Diagnostic features",
        "old": "Original value", "new": "New value", "kind": "Change type", "change_reason": "Reason",
        "apply": "Takes effect", "apply_live": "live (applied during training)",
        "apply_restart": "after restarting training", "auto_fix_tag": " (automatic consistency fix)",
        "no_changes": "No configuration changes in this adjustment.",
        "class_weights": "Class weights", "class": "Class", "weight": "Weight", "support": "Support",
        "class_weights_on": "class weights are enabled",
        "class_weights_off": "class weights are disabled (the weights below are not used)",
        "no_rejected": "No proposal was rejected.", "rejected_value": "Proposed value",
        "rejected_reason": "Reason", "auto_fixes": "Automatic consistency fixes",
        "no_auto_fixes": "No automatic consistency fixes.",
        "advisor_rules": "rule engine", "advisor_llm": "LLM", "advisor_hybrid": "hybrid (rule engine + LLM)",
        "analysis_reason": "Reason", "analysis_detail": "Detailed analysis", "advisor_info": "Advisor",
        "fallback": "⚠️ Fallback", "no_analysis": "(the advisor gave no analysis text)",
        "raw_output": "Raw output", "backend": "backend", "model": "model", "latency": "latency",
        "tokens": "tokens",
        "history": "History", "current_state": "Current state", "metric": "Metric", "value": "Value",
        "col_epoch": "Epoch", "col_train_loss": "Train loss", "col_train_acc": "Train acc",
        "col_val_loss": "Val loss", "col_val_acc": "Val acc", "col_val_f1": "Val macro-F1",
        "col_lr": "LR", "no_history": "No training metrics yet.",
        "history_tail": "(showing the last {n} of {total} epochs)",
        "m_precision": "Val precision", "m_recall": "Val recall", "m_grad_mean": "Mean grad norm",
        "m_grad_max": "Max grad norm", "m_nonfinite": "Non-finite steps", "m_ips": "Throughput (images/s)",
        "m_epoch_s": "Epoch time (s)", "m_ema_loss": "EMA val loss", "m_ema_acc": "EMA val acc",
        "m_ema_f1": "EMA val macro-F1", "per_class": "Per-class metrics", "precision": "Precision",
        "recall": "Recall", "f1": "F1",
        "config_before": "### Original", "config_after": "### Adjusted",
        "outcome_kept": "✅ Kept", "outcome_reverted": "↩️ Reverted",
        "prior_corrected": " (with the training class prior taken out)",
        "outcome_line": "{metric}: {before} → {after} (delta {delta}, noise margin {margin}), evaluated at epoch {epoch}",
        "outcome_line_best": "{metric}: {before} → {after} (delta {delta}; a refinement of a run that was not broken "
                             "must reach the pre-change best), evaluated at epoch {epoch}",
        "pending_n": "⏳ Pending — evaluated after {n} epochs",
        "pending": "⏳ Pending — evaluated after the next epochs",
        "outcome_not_applied": "This adjustment was not applied, so it is not evaluated (status: {status}).",
        "sum_changes": "**{n}** parameter(s) changed in this adjustment",
        "sum_auto": " ({n} of them automatic consistency fixes)",
        "sum_rejected": "Rejected proposals: **{n}**", "sum_advisor": "Based on the {advisor} analysis",
        "sum_status": "Status", "sum_generated": "Report generated at",
        "status_applied": "applied", "status_proposed": "proposed (awaiting approval)",
        "status_approved": "approved", "status_rejected_by_user": "rejected by the user",
        "status_recorded": "recorded only (not applied)", "status_kept": "kept",
        "status_reverted": "reverted", "status_stale": "stale (not applied)",
        "html_title": "Training summary", "html_run": "Run directory", "html_generated": "Generated at",
        "html_overview": "Overview", "html_epochs": "Epochs", "html_best_f1": "Best val macro-F1",
        "html_final_acc": "Final val accuracy", "html_adjustments": "Adjustments",
        "html_suspects": "Training images that look mislabelled", "html_image": "image",
        "html_file": "file", "html_label": "label",
        "html_suggested": "the model says", "html_p_label": "p(label)", "html_p_suggested": "p(model's class)",
        "html_suspects_note": "best.pt confidently calls these training images another class ({n} in all, the first "
                              "{shown} shown, most doubtful first); reports/suspect_labels.csv has them all. Check "
                              "them by hand: nothing was relabelled.",
        "html_suspects_weak": "The model contradicts over a third of its own training labels: it has not learned "
                              "these classes yet, so this list says little about the labels. Train longer first.",
        "html_loss": "Loss", "html_acc": "Accuracy and macro-F1", "html_lr": "Learning rate",
        "html_cm": "Confusion matrix (last epoch)", "html_cm_legend": "Classes behind the axis indices",
        "html_timeline": "Adjustment timeline", "html_changes": "Changes", "html_status": "Status",
        "html_outcome": "Outcome", "html_index": "Index", "html_none": "none", "html_at_epoch": "epoch {e}",
        "html_no_metrics": "No training metrics yet.", "html_no_adjustments": "No adjustments in this run.",
        "plot_pred": "Predicted", "plot_true": "True", "plot_train": "train", "plot_val": "val",
    },
}

ADVISORS = ("rules", "llm", "hybrid")

_ORDER = ("title", "h_reason", "h_diagnosis", "h_changes", "h_rejected", "h_analysis_llm",
          "h_metrics", "h_config", "h_outcome", "h_summary")

#: Headings of an adjustment report in document order (llm advisor variant).
SECTIONS: dict[str, list[str]] = {lang: [STRINGS[lang][k] for k in _ORDER] for lang in LANGS}

#: Last line of every adjustment report.
FOOTER: dict[str, str] = {lang: STRINGS[lang]["footer"] for lang in LANGS}


def norm_lang(lang: str | None) -> str:
    """``zh``/``zh_CN``/``zh-cn`` -> ``zh``; anything unknown -> ``en``."""
    low = (lang or "").lower()
    return "zh" if low.startswith("zh") else "en"


def tr(lang: str, key: str, **kw) -> str:
    """The string ``key`` in ``lang`` (falls back to en, then to the key), formatted."""
    table = STRINGS[norm_lang(lang)]
    text = table.get(key) or STRINGS["en"].get(key) or key
    return text.format(**kw) if kw else text


def advisor_key(advisor: str | None) -> str:
    a = (advisor or "").lower()
    return a if a in ADVISORS else "llm"


def analysis_heading(advisor: str | None, lang: str) -> str:
    """Heading of the analysis section, named after the advisor actually used."""
    return tr(lang, f"h_analysis_{advisor_key(advisor)}")


def sections_for(lang: str, advisor: str | None = "llm") -> list[str]:
    """Headings of a report in document order for the given advisor."""
    return [analysis_heading(advisor, lang) if k == "h_analysis_llm" else tr(lang, k)
            for k in _ORDER]


def label(lang: str, prefix: str, value: object) -> str:
    """Translated label ``prefix + value`` (e.g. ``status_applied``); the raw value
    when there is no translation for it."""
    key = f"{prefix}{value}"
    table = STRINGS[norm_lang(lang)]
    return table.get(key) or STRINGS["en"].get(key) or str(value)
