"""How a live change took effect, one sentence per fact, in English and Chinese (see :mod:`trainpilot.text`)."""

from __future__ import annotations

from trainpilot.text import CATALOGUE

NOTES: dict[str, tuple[str, str]] = {
    "note.pretrained": ("model switched onto {weights} (new classifier head, fresh optimizer and EMA)",
                        "模型已切换到 {weights}（新的分类头，重新初始化优化器和 EMA）"),
    "note.restart_fresh": ("warm restart from the current weights for {keys}: new optimizer, {sched} schedule over the "
                           "remaining {n} epochs, warming up over {w} steps",
                           "为 {keys} 从当前权重热重启：新的优化器，{sched} 调度覆盖剩余 {n} 轮，预热 {w} 步"),
    "note.restart_kept": ("warm restart from the current weights for {keys}: optimizer state kept, {sched} schedule "
                          "over the remaining {n} epochs, warming up over {w} steps",
                          "为 {keys} 从当前权重热重启：保留优化器状态，{sched} 调度覆盖剩余 {n} 轮，预热 {w} 步"),
    "note.replanned": ("lr schedule re-planned for the new number of optimizer steps", "已按新的优化步数重新规划学习率调度"),
    "note.peak_lr": ("peak lr set to {lr}; the schedule's shape continues from its current point",
                     "峰值学习率设为 {lr}；调度曲线从当前位置继续"),
    "note.left_out": ("drop_suspect_labels: {n} of {m} training images left out after epoch {e} (their label is "
                      "confidently contradicted)", "drop_suspect_labels：第 {e} 轮后 {m} 张训练图像中有 {n} 张被排除"
                      "（模型有把握地否定了它们的标签）"),
    "note.class_weights": ("class weights in use: {weights}", "当前使用的类别权重：{weights}"),
    "note.schedule_again": ("the lr schedule starts again over the remaining {n} epochs, warming up over {w} steps",
                            "学习率调度在剩余 {n} 轮上重新开始，预热 {w} 步"),
}

CATALOGUE.update(NOTES)
