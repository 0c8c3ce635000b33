"""The dashboard's words in English and Chinese. Report terms (statuses, outcomes) come from
``reports/i18n.py`` and diagnosis states from ``tuning/messages.py``, so a run reads the same in a
report and on screen."""

from __future__ import annotations

from trainpilot.reports.i18n import norm_lang

UI: dict[str, tuple[str, str]] = {
    "app": ("trainpilot", "trainpilot"),
    "nav.runs": ("Runs", "训练记录"), "nav.new": ("New run", "新建训练"), "nav.predict": ("Predict", "预测"),
    "nav.compare": ("Compare", "对比"), "nav.studies": ("Studies", "超参搜索"),
    "study.name": ("Study", "搜索"), "study.sampler": ("Sampler · pruner", "采样器 · 剪枝器"),
    "study.trials": ("trials", "次试验"), "study.best": ("best (val)", "最佳（验证集）"), "study.value": ("Value (val)", "验证集指标"),
    "study.report": ("Study report", "搜索报告"), "study.controller": ("controller", "调参控制器"),
    "study.changes": ("Controller changes", "控制器的调整"), "study.diagnosis": ("Diagnosis", "诊断"),
    "study.empty": ("No studies yet. Start one with `trainpilot tune --data DIR`.", "还没有超参搜索。运行 `trainpilot tune --data DIR` 开始。"),
    "runs.title": ("Runs", "训练记录"), "runs.empty": ("No runs yet. Start one with New run, or `trainpilot train --data DIR`.",
                                               "还没有训练记录。点击“新建训练”，或运行 `trainpilot train --data DIR`。"),
    "runs.filter": ("Filter by name, model or dataset", "按名称、模型或数据集筛选"),
    "runs.all_status": ("All statuses", "全部状态"), "runs.all_models": ("All models", "全部模型"),
    "runs.compare_selected": ("Compare selected", "对比所选"),
    "col.run": ("Run", "训练"), "col.status": ("Status", "状态"), "col.model": ("Model", "模型"),
    "col.data": ("Dataset", "数据集"), "col.epochs": ("Epochs", "轮次"), "col.best": ("Best", "最佳"),
    "col.last": ("Last", "最新"), "col.test": ("Test", "测试集"), "col.adjustments": ("Adjustments", "调整"),
    "col.started": ("Started", "开始时间"), "col.mode": ("Tuning", "调参模式"), "col.duration": ("Duration", "耗时"),
    "col.scoring": ("best.pt scores", "best.pt 推理"), "run.flips": ("4 views (test-time flips)", "4 个视图（测试时翻转）"),
    "run.one_view": ("1 view", "1 个视图"), "run.prior": ("class-prior tau", "类别先验校正 tau"),
    "st.running": ("running", "训练中"), "st.completed": ("completed", "已完成"), "st.stopped": ("stopped", "已停止"),
    "st.crashed": ("crashed", "已崩溃"), "st.pruned": ("pruned", "已剪枝"), "st.starting": ("starting", "启动中"),
    "adj.kept": ("kept", "保留"), "adj.reverted": ("reverted", "回滚"), "adj.pending": ("pending", "待定"),
    "run.curves": ("Curves", "训练曲线"), "run.loss": ("Loss", "损失"), "run.accuracy": ("Accuracy and macro-F1", "准确率与宏平均 F1"),
    "run.lr": ("Learning rate", "学习率"), "run.timeline": ("Adjustments", "参数调整"),
    "run.no_adjustments": ("No analysis yet.", "尚未进行分析。"),
    "run.no_change": ("Analyses that changed nothing", "未做改动的分析"),
    "run.recall": ("Per-class recall by epoch", "各类别召回率（按轮次）"), "run.counts": ("Training images per class", "各类别训练图片数"),
    "run.confusion": ("Confusion matrix (best weights)", "混淆矩阵（最佳权重）"),
    "run.counts_toggle": ("Counts", "数量"), "run.normalised": ("Normalised", "归一化"),
    "run.true": ("true", "真实"), "run.predicted": ("predicted", "预测"),
    "run.suspects": ("Training images that look mislabelled", "疑似标错的训练图像"),
    "run.suspects_note": ("best.pt confidently calls these another class, most doubtful first; the full list is "
                          "reports/suspect_labels.csv. Nothing is relabelled.",
                          "best.pt 确信这些图像属于另一类别，最可疑的在前；完整列表见 reports/suspect_labels.csv。系统不会改动标注。"),
    "run.reports": ("Reports", "报告"), "run.summary_html": ("summary.html", "summary.html"),
    "run.files": ("Run files", "运行文件"), "run.config": ("Config used", "实际使用的配置"),
    "run.changed_during": ("changed during the run", "训练中被修改"),
    "run.stop": ("Stop", "停止"), "run.resume": ("Resume", "继续训练"),
    "run.stop_confirm": ("Stop this run after the current batch? last.pt stays the resume point.",
                         "在当前批次结束后停止训练？last.pt 将作为续训起点。"),
    "run.live": ("live", "实时"), "run.epoch": ("epoch", "轮次"),
    "card.trigger": ("Trigger", "触发"), "card.diagnosis": ("Diagnosis", "诊断"), "card.changes": ("Changes", "变更"),
    "card.rejected": ("Rejected proposals", "被拒绝的建议"), "card.advisor": ("Advisor's analysis", "顾问分析全文"),
    "card.outcome": ("Outcome", "效果"), "card.notes": ("Notes", "说明"), "card.report": ("Report", "报告"), "card.window": ("evaluated over epochs", "评估轮次"),
    "card.approve": ("Approve", "批准"), "card.reject": ("Reject", "拒绝"), "card.note": ("Note (optional)", "备注（可选）"),
    "card.decided": ("{decision} by {by} at {at}", "{at} 由 {by} {decision}"),
    "card.approved": ("approved", "批准"), "card.rejected_by": ("rejected", "拒绝"),
    "card.picked_up": ("the run picks this up at its next epoch", "训练将在下一轮开始时执行"),
    "card.ended": ("Not decided: the run ended before anyone decided.", "未决定：训练已在决定前结束。"),
    "card.waiting": ("Waiting for your decision", "等待您的决定"),
    "compare.title": ("Compare runs", "对比训练"), "compare.none": ("Select two or more runs on the Runs page.",
                                                              "请在训练记录页选择两个或更多训练。"),
    "compare.diff": ("Config differences", "配置差异"), "compare.results": ("Results", "结果"),
    "compare.test_f1": ("Test macro-F1", "测试集宏平均 F1"), "compare.test_acc": ("Test accuracy", "测试集准确率"), "compare.same": ("The configs are identical.", "配置完全相同。"),
    "compare.key": ("key", "参数"),
    "new.title": ("New run", "新建训练"), "new.data": ("Dataset folder", "数据集文件夹"),
    "new.preview": ("Preview", "预览"), "new.name": ("Run name (optional)", "训练名称（可选）"),
    "new.start": ("Start training", "开始训练"), "new.defaults": ("Keys left at their default are chosen by the automatic recipe "
                                                                 "when it applies.", "保持默认的参数会在适用时由自动配方决定。"),
    "new.classes": ("Classes", "类别"), "new.skipped": ("Files that will be skipped", "将被跳过的文件"),
    "new.recipe": ("The automatic recipe would choose", "自动配方的选择"), "new.none_skipped": ("none", "无"),
    "new.fix": ("Fix the highlighted fields first.", "请先修正标出的字段。"),
    "predict.title": ("Predict", "预测"), "predict.run": ("Run", "训练"), "predict.checkpoint": ("Checkpoint", "权重"),
    "predict.drop": ("Drop images here, or click to choose", "将图片拖到此处，或点击选择"),
    "predict.folder": ("…or a folder on the server", "……或服务器上的文件夹"), "predict.go": ("Predict", "预测"),
    "predict.topk": ("Top-k", "Top-k"), "predict.none": ("No finished run with a checkpoint yet.", "还没有带权重的训练。"),
    "common.lang": ("中文", "English"), "common.loading": ("Loading…", "加载中…"), "common.error": ("Error", "错误"),
    "common.theme": ("Theme", "主题"),
}


def strings(lang: str) -> dict[str, str]:
    """Every dashboard string in ``lang`` (zh or en)."""
    i = 1 if norm_lang(lang) == "zh" else 0
    return {k: v[i] for k, v in UI.items()}


def pick_lang(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """?lang= wins, then the cookie the switch set, then the browser's first language."""
    for choice in (query, cookie):
        if choice in ("zh", "en"):
            return choice
    first = (accept_language or "").split(",")[0].strip()
    return norm_lang(first)
