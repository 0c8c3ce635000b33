"""Every sentence the tuning controller writes, in English and Chinese, in one catalogue (see :mod:`trainpilot.text`).

Findings and remedies carry a message key and its arguments (:class:`Msg`) and are rendered in
the report's language only when shown: a run is diagnosed once and can be read in either language.
"""

from __future__ import annotations

from typing import Any

import trainpilot.engine.notes  # noqa: F401  (the engine's notes join the catalogue: records keep their keys)
from trainpilot.text import CATALOGUE, Msg, render_all, render_stored, say

__all__ = ["MESSAGES", "Msg", "say", "render_stored", "state_label", "recorded", "reason_in", "render_findings"]

MESSAGES: dict[str, tuple[str, str]] = {
    # -- state names (English names are the state ids) --------------------------------------------
    "state.healthy": ("healthy", "健康"),
    "state.underfitting": ("underfitting", "欠拟合"),
    "state.overfitting": ("overfitting", "过拟合"),
    "state.diverging": ("diverging", "发散"),
    "state.plateau": ("plateau", "停滞"),
    "state.unstable": ("unstable", "不稳定"),
    "state.imbalance": ("imbalance", "类别不均衡"),
    "state.majority": ("collapsed to the majority class", "退化为只预测多数类"),
    "state.noisy_labels": ("noisy labels", "标签噪声"),
    "state.weak_class": ("one class not learned", "某一类未学会"),
    # -- why an analysis ran ----------------------------------------------------------------------------
    "reason.scheduled": ("Scheduled analysis of the whole history at epoch {at} (every {every} epochs from epoch "
                         "{first}).", "第 {at} 轮的定期分析（从第 {first} 轮起每 {every} 轮一次），依据完整训练历史。"),
    "reason.manual": ("Manual analysis (trainpilot analyze) of the whole history up to epoch {at}.",
                      "手动分析（trainpilot analyze），依据截至第 {at} 轮的完整训练历史。"),
    "reason.emergency": ("Emergency analysis at epoch {at}: the loss became non-finite or exploded.",
                         "第 {at} 轮的紧急分析：损失变为非有限值或急剧增大。"),
    "reason.collapse": ("Early analysis at epoch {at}: the model answers (almost) only the majority class, and nothing "
                        "balances the class counts yet.", "第 {at} 轮的提前分析：模型（几乎）只回答多数类，且尚无任何类别"
                        "平衡措施。"),
    # -- why a change was kept or rolled back ---------------------------------------------------------------
    "outcome.within_noise": ("{metric} is within the noise margin of, or above, the pre-change best",
                             "{metric} 不低于改动前的最佳值（或差距在噪声容限内）"),
    "outcome.below_noise": ("{metric} fell below the pre-change best by more than the noise margin",
                            "{metric} 比改动前的最佳值低出噪声容限以上"),
    "outcome.reached_best": ("{metric} reached the pre-change best (a refinement of a run that was not broken must)",
                             "{metric} 达到了改动前的最佳值（对未出故障的训练所做的改进须达到）"),
    "outcome.missed_best": ("{metric} did not reach the pre-change best, which a refinement of a run that was not "
                            "broken must", "{metric} 未达到改动前的最佳值，而对未出故障的训练所做的改进须达到"),
    "outcome.superseded": ("superseded by a further emergency remedy", "被后续的紧急补救措施取代"),
    "outcome.exploded": ("the loss became non-finite or exploded after this change", "此改动后损失变为非有限值或急剧增大"),
    # -- notes on a proposal or on how it was applied ----------------------------------------------------
    "note.weights_by_trainer": ("class weights will be computed by the trainer from the training counts",
                                "类别权重将由训练器根据训练集计数计算"),
    "note.mixup_inactive": ("{key} changed while advanced_augmentation_enabled is false: no effect until it is enabled",
                            "advanced_augmentation_enabled 为 false 时修改了 {key}：启用前不起作用"),
    "note.onecycle_warmup": ("OneCycleLR has its own warm-up phase; the separate warmup is not used with it",
                             "OneCycleLR 自带预热阶段，单独的预热不与其同时使用"),
    "note.late": ("the proposal arrived after the last epoch: recorded, not applied", "建议在最后一轮之后才到达：已记录，未应用"),
    "note.stale": ("the proposal asked for at epoch {asked} arrived at epoch {at}, more than stale_after_epochs={n} "
                   "later: dropped", "第 {asked} 轮请求的建议在第 {at} 轮才到达，超过 stale_after_epochs={n}：已丢弃"),
    "note.reset": ("weights reset to the run's initial weights before the lr change: at that lr they held nothing worth "
                   "keeping (never above chance, or a training loss above a uniform guess's), so this is a rollback "
                   "to the last undamaged state", "调整学习率前已将权重重置为训练开始时的权重：在那个学习率下它们没有"
                   "值得保留的内容（从未高于随机水平，或训练损失高于均匀猜测），因此这是回到最后一个未受损的状态"),
    # -- why the action schema rejected a proposed change (the English text is what the run records) ----------
    "reject.number": ("expected a number, got {got}", "应为数字，实际为 {got}"),
    "reject.number_none": ("expected a number, got nothing", "应为数字，但没有给出值"),
    "reject.text": ("expected a number, got the text {got}", "应为数字，实际为文本 {got}"),
    "reject.nonfinite": ("{v} is not a finite number", "{v} 不是有限数值"),
    "reject.whole": ("expected a whole number, got {v}", "应为整数，实际为 {v}"),
    "reject.range": ("{v} is outside the allowed range {range}{src}", "{v} 超出允许范围 {range}{src}"),
    "reject.bool": ("expected true or false, got {got}", "应为 true 或 false，实际为 {got}"),
    "reject.choice": ("{got} is not one of {choices}", "{got} 不在允许的取值中（{choices}）"),
    "reject.weights_dict": ("class weights are computed from the data: set use_class_weights=true (got {got})",
                            "类别权重由数据计算：请设置 use_class_weights=true（实际为 {got}）"),
    "reject.weights_names": ("class_weights must name exactly the classes {names} (missing: {missing}; unknown: "
                             "{unknown})", "class_weights 必须恰好列出这些类别：{names}（缺少：{missing}；未知：{unknown}）"),
    "reject.weight_value": ("class weight for {name} must be a positive finite number, got {got}",
                            "类别 {name} 的权重必须是正的有限数值，实际为 {got}"),
    "reject.unknown": ("unknown key '{key}'", "未知参数 '{key}'"),
    "reject.unknown_hint": ("unknown key '{key}'; did you mean '{hint}'?", "未知参数 '{key}'；是否想用 '{hint}'？"),
    "reject.fixed": ("not tunable: '{key}' is fixed for the run (paths, model, task, device, seed and other identity "
                     "settings are never changed by the controller)", "不可调整：'{key}' 在本次训练中固定（路径、模型、任务、"
                     "设备、随机种子等身份设置从不由控制器修改）"),
    "reject.lr_factor": ("{old} -> {new} is a x{ratio} change; one intervention may change learning_rate by at most x{f} "
                         "(allowed range [{lo}, {hi}])", "{old} -> {new} 是 {ratio} 倍的变化；单次干预最多将 learning_rate "
                         "改变 {f} 倍（允许范围 [{lo}, {hi}]）"),
    "reject.epochs_down": ("num_epochs can only be extended (now {old}, got {new}); early stopping ends a run sooner",
                           "num_epochs 只能增加（当前 {old}，建议 {new}）；提前结束训练由早停负责"),
    "reject.epochs_factor": ("num_epochs {old} -> {new} is more than x{f} per intervention (at most {most})",
                             "num_epochs {old} -> {new} 超过单次干预 {f} 倍的上限（最多 {most}）"),
    "reject.pretrained_off": ("use_pretrained can only be switched on: ImageNet features, once trained on, cannot be "
                              "unlearned", "use_pretrained 只能开启：已在 ImageNet 特征上训练过的模型无法撤销"),
    "reject.pretrained_path": ("the run already starts from pretrained_path {path}", "本次训练已从 pretrained_path {path} 开始"),
    "reject.no_weights": ("no ImageNet weights for {model} are available offline", "离线状态下没有 {model} 的 ImageNet 权重"),
    "reject.reverted": ("{key} {dir} was reverted earlier in this run", "本次训练中 {key} 的同向调整（{dir}）此前已被回滚"),
    "reject.too_many": ("at most {n} changes per proposal", "每个建议最多 {n} 项变更"),
    "reject.duplicate": ("duplicate: {key} was already proposed", "重复：{key} 已在本建议中出现"),
    "reject.custom_weights": ("weight_strategy=custom needs class_weights for every class; use 'balanced' to compute "
                              "them", "weight_strategy=custom 需要为每个类别给出 class_weights；可用 'balanced' 自动计算"),
    "reject.accumulation": ("gradient_accumulation_steps is 1; propose steps > 1 as well",
                            "gradient_accumulation_steps 为 1；需同时建议大于 1 的步数"),
    "reject.odd_batch": ("mixup/cutmix needs an even batch_size (batch_size is {bs})",
                         "mixup/cutmix 需要偶数的 batch_size（当前为 {bs}）"),
    # -- what the action schema set to keep the accepted changes consistent ----------------------------
    "fix.custom_strategy": ("explicit class_weights are only used with weight_strategy=custom",
                            "显式给出的 class_weights 仅在 weight_strategy=custom 时生效"),
    "fix.weights_on": ("explicit class_weights were given, so class weighting is switched on",
                       "给出了显式的 class_weights，因此开启类别加权"),
    "fix.weights": ("computed from the training counts ({counts}) with weight_strategy={strategy}",
                    "按训练样本数（{counts}）以 weight_strategy={strategy} 计算"),
    "fix.weights_drawn": ("computed from the training counts ({counts}), as the {sampler} sampler draws them, with "
                          "weight_strategy={strategy}", "按训练样本数（{counts}）在 {sampler} 采样下的抽取比例，以 "
                          "weight_strategy={strategy} 计算"),
    "fix.accumulation_off": ("gradient_accumulation_steps=1 accumulates nothing: accumulation disabled",
                             "gradient_accumulation_steps=1 不累积任何梯度：关闭梯度累积"),
    "fix.accumulation_on": ("gradient_accumulation_steps={steps} only takes effect with accumulation enabled",
                            "gradient_accumulation_steps={steps} 仅在开启梯度累积时生效：已开启"),
    "fix.smoothing_on": ("label_smoothing={v} only takes effect when enabled", "label_smoothing={v} 仅在开启时生效：已开启"),
    "fix.smoothing_amount": ("label smoothing was enabled with an amount of 0; set to 0.1",
                             "开启了标签平滑但数值为 0：设为 0.1"),
    "fix.mixup_on": ("{key} was changed to enable mixup/cutmix", "修改 {key} 意在启用 mixup/cutmix：已开启"),
    "fix.clipping_on": ("gradient_clipping_value only takes effect with clipping on: clipping enabled",
                        "gradient_clipping_value 仅在开启梯度裁剪时生效：已开启"),
    # -- evidence -------------------------------------------------------------------------------------
    "ev.nonfinite_loss": ("{name} is {value} at epoch {epoch} (non-finite)", "第 {epoch} 轮 {name} 为 {value}（非有限值）"),
    "ev.nonfinite_steps": ("{n} of {steps} training steps had a non-finite loss in epoch {epoch}",
                           "第 {epoch} 轮有 {n}/{steps} 个训练步的损失为非有限值"),
    "ev.blowup": ("train_loss {last:.4g} at epoch {epoch} is {ratio:.2f}x its best {best:.4g} (epoch {best_epoch}; "
                  "threshold {thr:g}x)", "第 {epoch} 轮 train_loss {last:.4g} 是其最佳值 {best:.4g}（第 {best_epoch} 轮）的 "
                  "{ratio:.2f} 倍（阈值 {thr:g} 倍）"),
    "ev.loss_rising": ("train_loss rose {k} epochs in a row ({a:.4g} -> {b:.4g}, {pct:+.0f}% per epoch)",
                       "train_loss 连续 {k} 轮上升（{a:.4g} -> {b:.4g}，每轮 {pct:+.0f}%）"),
    "ev.near_chance": ("val_accuracy {va:.3f} is near chance ({chance:.3f} for {k} classes) after {n} epoch(s)",
                       "训练 {n} 轮后 val_accuracy 为 {va:.3f}，接近随机猜测水平（{k} 类时为 {chance:.3f}）"),
    "ev.not_fitting": ("train_accuracy is only {ta:.3f} after {n} epochs", "训练 {n} 轮后 train_accuracy 仅为 {ta:.3f}"),
    "ev.lr_low": ("train_loss changes only {pct:.2f}% per epoch over the last {w} epochs ({a:.4g} -> {b:.4g}): "
                  "lr {lr:g} looks too low", "最近 {w} 轮 train_loss 每轮仅变化 {pct:.2f}%（{a:.4g} -> {b:.4g}）：学习率 {lr:g} 可能过低"),
    "ev.lr_high": ("train_loss is rising or oscillating ({pct:+.1f}% per epoch, {sc} direction changes, max grad norm "
                   "{gmax:.3g}): lr {lr:g} looks too high", "train_loss 在上升或振荡（每轮 {pct:+.1f}%，方向变化 {sc} 次，"
                   "最大梯度范数 {gmax:.3g}）：学习率 {lr:g} 可能过高"),
    "ev.collapsed": ("val accuracy never rose above chance (best {va:.3f} for {k} classes; train {ta:.3f}): the "
                     "weights hold nothing worth keeping", "验证准确率从未高于随机水平（{k} 类时最佳为 {va:.3f}；训练 {ta:.3f}）："
                     "当前权重没有值得保留的内容"),
    "ev.damaged": ("train_loss {tl:.4g} is above a uniform guess's ({u:.3g} for {k} classes) at lr {lr:g}: the weights are "
                   "confidently wrong on their own training images, so they hold nothing worth keeping",
                   "训练损失 {tl:.4g} 高于均匀猜测（{k} 类时为 {u:.3g}），学习率 {lr:g}：权重在自己的训练图像上自信地出错，"
                   "没有值得保留的内容"),
    "ev.lr_slow": ("the loss falls smoothly but slowly ({a:.4g} -> {b:.4g} over {n} epochs): lr {lr:g} has room to grow",
                   "损失平稳但缓慢地下降（{n} 轮内 {a:.4g} -> {b:.4g}）：学习率 {lr:g} 仍有提升空间"),
    "ev.lr_prior_high": ("lr {lr:g} is above the usual range for {opt} ({lo:g}-{hi:g}), so a flat loss means a stalled, "
                         "not a slow, network", "学习率 {lr:g} 高于 {opt} 的常用范围（{lo:g}-{hi:g}），损失停滞说明网络已失效而非学得慢"),
    "ev.lr_prior_low": ("lr {lr:g} is below the usual range for {opt} ({lo:g}-{hi:g})",
                        "学习率 {lr:g} 低于 {opt} 的常用范围（{lo:g}-{hi:g}）"),
    "ev.fine_tuning": ("fine-tuning", "微调"),
    "ev.from_scratch": ("from scratch", "从头训练"),
    "ev.val_rising": ("val_loss rose {k} epochs in a row ({a:.4g} -> {b:.4g}) while train_loss fell {pct:.0f}%",
                      "val_loss 连续 {k} 轮上升（{a:.4g} -> {b:.4g}），而 train_loss 下降了 {pct:.0f}%"),
    "ev.acc_gap": ("train/val accuracy gap is {gap:.3f} (train {ta:.3f}, val {va:.3f}); val_loss is {pct:.0f}% above "
                   "its best {best:.4g}", "训练/验证准确率差距为 {gap:.3f}（训练 {ta:.3f}，验证 {va:.3f}）；val_loss 比其最佳值 "
                   "{best:.4g} 高 {pct:.0f}%"),
    "ev.plateau": ("{metric} has not improved by 1% over the last {w} epochs (best {recent:.4g} vs {before:.4g} before: "
                   "{pct:+.2f}%)", "最近 {w} 轮 {metric} 提升不足 1%（最佳 {recent:.4g}，此前 {before:.4g}：{pct:+.2f}%）"),
    "ev.oscillation": ("val_loss changed direction {sc} times in the last {m} epochs (std of its changes {std:.3g}, "
                       "{rel:.0f}% of its mean)", "最近 {m} 轮 val_loss 方向变化 {sc} 次（变化量标准差 {std:.3g}，为均值的 {rel:.0f}%）"),
    "ev.grad_growth": ("mean gradient norm grew {g:.1f}x over the last {w} epochs ({a:.3g} -> {b:.3g})",
                       "最近 {w} 轮平均梯度范数增长了 {g:.1f} 倍（{a:.3g} -> {b:.3g}）"),
    "ev.class_collapse": ("class {name} has recall {r:.2f} while the mean recall is {mean:.2f}",
                          "类别 {name} 的召回率为 {r:.2f}，而平均召回率为 {mean:.2f}"),
    "ev.minority": ("training counts are imbalanced {ratio:.1f}:1 (largest {big} = {nb}, smallest {small} = {ns}); "
                    "the smallest class has recall {r:.2f}", "训练样本数不均衡 {ratio:.1f}:1（最多 {big} = {nb}，最少 {small} = {ns}）；"
                    "最少类别的召回率为 {r:.2f}"),
    "ev.majority": ("{share:.0%} of the validation images are predicted as {name} ({base:.0%} of them are {name}); "
                    "{zero} of {k} classes have recall 0 (macro-F1 {f1:.3f})",
                    "{share:.0%} 的验证图像被预测为 {name}（其中真实为 {name} 的占 {base:.0%}）；{k} 个类别中有 {zero} 个召回率为 0"
                    "（macro-F1 {f1:.3f}）"),
    "ev.noisy_labels": ("train accuracy {ta:.3f} against val {va:.3f}: the model has rejected at least {share:.0%} of "
                        "the training labels for {w} epochs, more than it gets wrong on held-out images, so about that "
                        "share of training images looks mislabelled", "训练准确率 {ta:.3f}，验证 {va:.3f}：连续 {w} 轮模型"
                        "与至少 {share:.0%} 的训练标签不一致，多于它在验证图像上的错误，约这一比例的训练图像疑似标错"),
    "ev.prior_corrected": ("these recalls are read with the training class prior taken out (logit adjustment at "
                           "tau 1), as the final model answers",
                           "以上召回率按扣除训练类别先验后（tau 为 1 的 logit 调整）读取，与最终模型的输出一致"),
    "ev.minority_zero": ("class {name} has had recall 0 for {n} epochs in a row", "类别 {name} 已连续 {n} 轮召回率为 0"),
    "ev.healthy": ("{metric} moved from {a:.4g} to {b:.4g} over the last {w} epochs; no problem found",
                   "最近 {w} 轮 {metric} 从 {a:.4g} 变为 {b:.4g}；未发现问题"),
    "ev.no_history": ("no epochs recorded yet", "尚无训练记录"),
    # -- remedies -------------------------------------------------------------------------------------
    "why.lr_down_div": ("the loss is blowing up: learning rate x{f:g}", "损失发散：学习率 x{f:g}"),
    "why.clip_on": ("clip the global gradient norm at {v:g} to stop single bad steps",
                    "将全局梯度范数裁剪到 {v:g}，避免个别异常步"),
    "why.accum_up": ("average gradients over {s} micro-batches for a steadier step",
                     "在 {s} 个微批次上累积梯度，使更新更平稳"),
    "why.lr_up": ("the loss barely moves, so the learning rate looks too low: x{f:g}", "损失几乎不变，学习率可能过低：x{f:g}"),
    "why.lr_down_high": ("the loss is rising or oscillating, so the learning rate looks too high: x{f:g}",
                         "损失上升或振荡，学习率可能过高：x{f:g}"),
    "why.accum_off": ("only {s} optimizer steps per epoch: gradient accumulation off, so each batch updates the weights",
                      "每轮仅 {s} 次优化步：关闭梯度累积，每个批次都更新权重"),
    "why.cosine": ("the {old} schedule cuts the lr while the model still underfits: a cosine schedule over the remaining "
                   "epochs (warm restart from the current weights)", "{old} 在模型仍欠拟合时就降低学习率：改为余弦调度"
                   "覆盖剩余轮次（从当前权重热重启）"),
    "why.less_dropout": ("the model does not fit the training data: less dropout", "模型未能拟合训练数据：降低 dropout"),
    "why.less_wd": ("the model does not fit the training data: less weight decay", "模型未能拟合训练数据：降低权重衰减"),
    "why.no_mixup": ("the model does not fit the training data: mixup/cutmix off", "模型未能拟合训练数据：关闭 mixup/cutmix"),
    "why.more_wd": ("more weight decay (x{f:g}) to regularize", "增大权重衰减（x{f:g}）以加强正则化"),
    "why.smoothing": ("label smoothing against over-confident predictions", "启用标签平滑，抑制过度自信的预测"),
    "why.mixup": ("mixup/cutmix as a strong regularizer", "启用 mixup/cutmix 作为强正则化"),
    "why.augment": ("data augmentation on", "启用数据增强"),
    "why.dropout": ("more dropout before the classifier ({v:g})", "提高分类头前的 dropout（{v:g}）"),
    "why.weights": ("weight the loss by class ({s}) so minority classes count", "按类别加权损失（{s}），提高少数类的权重"),
    "why.weights_gentle": ("weight the loss by class with log_inverse weights ({w:.1f}:1 rather than the {r:.3g}:1 of "
                           "balanced weights) so the minority class counts without dominating every batch it appears in",
                           "按类别加权损失，采用 log_inverse 权重（{w:.1f}:1，而非 balanced 权重的 {r:.3g}:1），"
                           "使少数类受到重视而不主导其所在批次的梯度"),
    "why.weights_full": ("the minority class still has recall {rec:.2f} with log_inverse weights: balanced weights "
                         "({r:.3g}:1)", "使用 log_inverse 权重后少数类召回率仍为 {rec:.2f}：改用 balanced 权重（{r:.3g}:1）"),
    "why.pretrained": ("a model trained from scratch that found no feature beyond the majority class: restart it from "
                       "ImageNet weights ({src}), keeping the run", "从零训练的模型只学会了多数类：改用 ImageNet 预训练权重"
                       "（{src}）热重启，运行继续"),
    "why.sampler": ("draw training images class-balanced ({s} sampling), so every batch shows the minority classes",
                    "按类别均衡地抽取训练图像（{s} 采样），让每个批次都包含少数类"),
    "why.lr_majority_down": ("the model predicts one class while the loss stalls: learning rate x{f:g}",
                             "模型只预测一个类别且损失停滞：学习率 x{f:g}"),
    "why.lr_majority_up": ("the model predicts one class and the loss barely moves: learning rate x{f:g}",
                           "模型只预测一个类别且损失几乎不变：学习率 x{f:g}"),
    "why.lr_plateau": ("the monitored metric has stopped improving: learning rate x{f:g}", "监控指标不再提升：学习率 x{f:g}"),
    "why.lr_unstable": ("the validation loss oscillates: learning rate x{f:g}", "验证损失振荡：学习率 x{f:g}"),
    # -- why a remedy waits -------------------------------------------------------------------------------
    "wait.drawn_even": ("no class weights: as drawn ({s} sampling) the classes are within {r:.3g}:1 already, so the "
                        "weights would all be about 1.0", "不加类别权重：按当前采样（{s}）各类抽取比例已在 {r:.3g}:1 以内，"
                        "权重都将接近 1.0"),
    "wait.weak_class": ("no class-balance change: the training counts are balanced, so class weights or a sampler "
                        "would not show {name} more often; its validation images are mostly taken for {other}: a "
                        "look-alike class or mixed-up labels between the two", "不做类别平衡调整：训练样本各类数量均衡，"
                        "类别权重或采样不会让 {name} 出现得更多；它的验证图像大多被判为 {other}：两类外观相近或标注混淆"),
    "wait.weak_class_plain": ("no class-balance change: the training counts are balanced, so class weights or a "
                              "sampler would not show {name} more often", "不做类别平衡调整：训练样本各类数量均衡，"
                              "类别权重或采样不会让 {name} 出现得更多"),
    "wait.majority_low": ("no class weights: the model already gives up the majority class more than the rest (its "
                          "recall {a:.2f}, the mean {m:.2f}); more weight on the others would trade more of it",
                          "不加类别权重：模型对多数类的召回率（{a:.2f}）已低于平均（{m:.2f}），再加权会进一步牺牲多数类"),
    "wait.sampler": ("class weights wait: {s} sampling already rebalances what the loss sees; they come if \"{name}\" "
                     "stays at recall 0 for {w} epochs (so far {n})", "类别权重暂缓：{s} 采样已平衡损失所见的类别比例；"
                     "若“{name}”的召回率连续 {w} 轮为 0（目前 {n} 轮）再启用"),
    "why.drop_suspects": ("about {share:.0%} of the training labels look wrong: train without the images whose label "
                          "the model confidently contradicts, re-scored every few epochs (relabelling them is the "
                          "real fix: the run ends with their list in reports/suspect_labels.csv)",
                          "约 {share:.0%} 的训练标签疑似有误：训练时暂不使用模型确信标签有误的图像，每隔几轮重新评估"
                          "（根本的修复是重新标注：训练结束时 reports/suspect_labels.csv 会列出它们）"),
    "wait.noisy_labels": ("no training change for wrong labels: relabelling them is the fix; when the run ends, "
                          "reports/suspect_labels.csv lists the training images the model confidently calls another "
                          "class (about {share:.0%} of the training labels look wrong now)",
                          "标签错误不靠调整训练来修复，应重新标注：训练结束时 reports/suspect_labels.csv 会列出模型确信"
                          "属于其他类别的训练图像（目前约 {share:.0%} 的训练标签疑似有误）"),
    "wait.noisy_labels_off": ("no training change for wrong labels: relabelling them is the fix (about {share:.0%} of "
                              "the training labels look wrong now); set suspect_labels=true to have the run list them",
                              "标签错误不靠调整训练来修复，应重新标注（目前约 {share:.0%} 的训练标签疑似有误）；"
                              "设置 suspect_labels=true 可在训练结束时列出这些图像"),
    "wait.gentle_weights": ("no full class weights yet: with the gentle ones \"{name}\" reached recall {peak:.2f} "
                            "within the last {w} epochs; they come if it stays below 0.50 for a whole window",
                            "暂不启用完全类别权重：在温和权重下“{name}”最近 {w} 轮的召回率最高达到 {peak:.2f}；"
                            "若整个评估窗口内都低于 0.50 再启用"),
    "wait.full_weights": ("the loss already weights classes in full ({s}); no stronger class-balance remedy",
                          "损失已按类别完全加权（{s}），没有更强的类别平衡措施"),
    "wait.balanced_sampler": ("every class is already drawn equally often (balanced sampling): loss weights on top "
                              "would count the imbalance twice", "各类已被等频抽取（balanced 采样）：再加损失权重会重复补偿不均衡"),
    # -- the rule advisor's text ------------------------------------------------------------------------
    "txt.diag": ("Diagnosis", "诊断"),
    "txt.sev": ("severity", "严重程度"),
    "txt.prop": ("Proposed", "建议"),
    "txt.skip": ("Skipped", "跳过"),
    "txt.none": ("no changes", "无变更"),
    "txt.reverted": ("reverted earlier in this run", "本次训练中曾被回滚"),
    "txt.retry": ("reverted at epoch {e}, tried again: the evidence has grown since", "第 {e} 轮曾被回滚，现证据更充分，再次尝试"),
    "txt.apart": ("{keys}: judged on its own, after the {kind} change (a class-balance remedy and any other change "
                  "are not judged together)", "{keys}：待{kind}变更评估后再单独尝试（类别平衡措施不与其他变更一同评估）"),
    "txt.kind_balance": ("class-balance", "类别平衡"),
    "txt.kind_other": ("other", "其他"),
    "txt.healthy": ("Training looks healthy; no changes proposed.", "训练状态健康，不建议修改。"),
    "txt.exhausted": ("every standard remedy for these findings was tried and reverted earlier; no changes proposed.",
                      "针对这些问题的标准措施此前均已尝试并被回滚，本次不建议修改。"),
    "txt.annealing": ("{label}: no lr cut, the {s} schedule already lowers the lr", "{label}：不降低学习率，{s} 调度已在逐步降低学习率"),
    "txt.recent_cut": ("{label}: no lr raise, the lr was cut from above the usual range at epoch {e} and the loss is "
                       "not flat enough to call that cut too deep", "{label}：不提高学习率，第 {e} 轮刚将学习率从常用范围以上调低，"
                       "损失尚未停滞到足以说明调得过低"),
    "txt.range_top": ("{label}: no lr raise, lr {lr:g} is at the top of the usual range ({hi:g}) and the loss still "
                      "falls; only a flat loss would justify leaving it", "{label}：不提高学习率，学习率 {lr:g} 已达常用范围上限"
                      "（{hi:g}），且损失仍在下降；只有损失停滞才值得超出该范围"),
}


CATALOGUE.update(MESSAGES)


def state_label(state: str, lang: str = "en") -> str:
    return say(f"state.{state}", lang) if f"state.{state}" in MESSAGES else state


def recorded(why: "Msg | str") -> dict[str, Any]:
    """How a record keeps a reason: ``reason`` in English and, for a message, ``reason_msg`` (key and arguments)."""
    if isinstance(why, Msg):
        return {"reason": why.render("en"), "reason_msg": why.to_dict()}
    return {"reason": why}


def reason_in(entry: dict, lang: str, default: str = "") -> str:
    """A record entry's ``reason`` in ``lang`` (from its ``reason_msg`` where kept), else as written."""
    return render_stored(entry.get("reason_msg"), lang, str(entry.get("reason") or default))


def render_findings(state: dict, lang: str) -> list[str]:
    """A stored diagnosis state's findings in ``lang`` where the record keeps their message keys (``findings``);
    else its ``evidence`` as written."""
    return render_all(state.get("evidence"), state.get("findings"), lang)
