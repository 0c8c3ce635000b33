"""Every config key has a real effect. Each test names the keys it proves."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import NEU, SEED_DIR, TINY
from trainpilot.api import build_trainer
from trainpilot.config import ConfigError, TrainConfig, build_config
from trainpilot.engine import precision as prec
from trainpilot.models import build_model, resolve_model_name

COVERED: set[str] = set()


def covers(*keys):
    """Record which keys a test proves, so the last test can check that none is left out."""
    COVERED.update(keys)
    return lambda f: f


def _trainer(tiny_cfg, tmp_path, **over):
    trainer, notices = build_trainer({**tiny_cfg, **over}, runs_dir=tmp_path)
    return trainer


@covers("model_name")
def test_model_name_aliases_and_timm_names():
    assert resolve_model_name("MobileNetV3") == "mobilenetv3_large_100"
    assert resolve_model_name("MobileNetV3-Small") == "mobilenetv3_small_100"
    assert resolve_model_name("ResNet50") == "resnet50"
    assert resolve_model_name("EfficientNetB3") == "efficientnet_b3"
    assert resolve_model_name("ConvNeXt-Tiny") == "convnext_tiny"
    assert resolve_model_name("Xception") == "legacy_xception"
    assert resolve_model_name("resnet18") == "resnet18"
    with pytest.raises(ConfigError, match="unknown model 'ResNot50'"):
        resolve_model_name("ResNot50")


@covers("batch_size", "gradient_accumulation_enabled", "gradient_accumulation_steps", "image_size", "val_split")
def test_batching_and_accumulation(tiny_cfg, tmp_path):
    t = _trainer(tiny_cfg, tmp_path, batch_size=4, gradient_accumulation_enabled=True, gradient_accumulation_steps=3)
    n = len(t.data.train)
    assert t.batches_per_epoch() == n // 4 and t.steps_per_epoch() == -(-(n // 4) // 3)
    off = _trainer(tiny_cfg, tmp_path, batch_size=4, gradient_accumulation_enabled=False, gradient_accumulation_steps=3)
    assert off.steps_per_epoch() == n // 4
    assert t.data.val.images.shape[-1] == 32 and t.data.train.images.shape[-1] == 40  # x train_cache_scale 1.25


@covers("dropout_rate", "activation_function")
def test_dropout_and_activation():
    model, info = build_model(build_config({**TINY, "dropout_rate": 0.4, "activation_function": "GELU"}), 3)
    assert model.drop_rate == 0.4 and info["activations_replaced"] > 0
    kinds = {type(m).__name__ for m in model.modules()}
    assert "GELU" in kinds and "Hardswish" not in kinds and "ReLU" not in kinds
    own, _ = build_model(build_config({**TINY}), 3)
    assert "Hardswish" in {type(m).__name__ for m in own.modules()}


@covers("use_pretrained")
def test_use_pretrained_loads_packaged_weights_and_fails_clearly_offline(monkeypatch):
    from trainpilot.models import packaged_weights_file

    path = packaged_weights_file("tf_efficientnet_lite0")
    assert path is not None and path.exists()
    cfg = build_config({"model_name": "tf_efficientnet_lite0", "use_pretrained": True})
    model, info = build_model(cfg, 5)
    stem = torch.load(path, map_location="cpu", weights_only=True)
    first = next(v for k, v in stem.items() if v.ndim == 4)
    assert torch.equal(model.conv_stem.weight, first)
    assert info["mean"] == (0.5, 0.5, 0.5) and "packaged" in info["weights"]
    # the new 5-class head starts at zero: every class alike, the first loss that of a uniform guess (ln 5)
    model.eval()
    logits = model(torch.rand(4, 3, 64, 64) * 2 - 1)
    assert torch.allclose(logits, torch.zeros_like(logits))
    assert torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).item() == pytest.approx(math.log(5))
    import trainpilot.models as models

    real = models.timm.create_model
    hub = lambda name, pretrained=False, **kw: real(name, pretrained=False, **kw)  # noqa: E731 - a hub donor, offline
    monkeypatch.setattr(models.timm, "create_model", hub)
    from_hub, info = build_model(build_config({**TINY, "use_pretrained": True}), 3)
    assert "hub" in info["weights"] and not from_hub.get_classifier().weight.any()  # the donor's head is not ImageNet's
    monkeypatch.setattr(models.timm, "create_model", real)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="use_pretrained.*pretrained_path"):
        build_model(build_config({**TINY, "use_pretrained": True}), 3)


@covers("pretrained_path")
def test_pretrained_path_replaces_the_head(tmp_path):
    donor, _ = build_model(build_config(TINY), 7)
    torch.save({"model": donor.state_dict()}, tmp_path / "donor.pt")
    model, info = build_model(build_config({**TINY, "pretrained_path": str(tmp_path / "donor.pt")}), 3)
    assert torch.equal(model.conv_stem.weight, donor.conv_stem.weight)
    assert model.classifier.out_features == 3 and "pretrained_path" in info["weights"]
    assert not model.classifier.weight.any()  # another class count: the head starts at zero
    same, _ = build_model(build_config({**TINY, "pretrained_path": str(tmp_path / "donor.pt")}), 7)
    assert torch.equal(same.classifier.weight, donor.classifier.weight)  # the same count: the donor's head is kept
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="pretrained_path"):
        build_model(build_config({**TINY, "pretrained_path": str(tmp_path / "junk.pt")}), 3)


@covers("use_class_weights", "weight_strategy", "class_weights", "label_smoothing_enabled", "label_smoothing")
def test_loss_keys(tiny_cfg, tmp_path):
    t = _trainer(tiny_cfg, tmp_path, use_class_weights=True, weight_strategy="custom",
                 class_weights={"划痕": 1.0, "污点": 2.0, "异物": 3.0}, label_smoothing=0.2)
    assert t.loss_fn.class_weights.tolist() == [1.0, 2.0, 3.0] or sorted(t.loss_fn.class_weights.tolist()) == [1.0, 2.0, 3.0]
    assert t.loss_fn.label_smoothing == 0.2
    off = _trainer(tiny_cfg, tmp_path, label_smoothing_enabled=False)
    assert off.loss_fn.label_smoothing == 0.0 and off.loss_fn.class_weights is None
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    assert not torch.isclose(t.loss_fn(logits, y), off.loss_fn(logits, y))
    # weights are taken on the counts as the sampler draws them: a balanced sampler leaves nothing to weight
    from trainpilot.engine.live import resolve_class_weights

    names, counts = ["a", "b", "c"], [400, 100, 25]
    w = {s: resolve_class_weights(build_config({"use_class_weights": True, "weight_strategy": "balanced", "sampler": s}),
                                  counts, names) for s in ("shuffle", "sqrt", "balanced")}
    assert w["shuffle"]["c"] / w["shuffle"]["a"] == pytest.approx(16) and w["sqrt"]["c"] / w["sqrt"]["a"] == pytest.approx(4)
    assert list(w["balanced"].values()) == pytest.approx([1.0] * 3)


@covers("focal_gamma")
def test_focal_gamma_takes_the_easy_images_out_of_the_loss(tiny_cfg, tmp_path):
    ce = _trainer(tiny_cfg, tmp_path, label_smoothing_enabled=False).loss_fn
    focal = _trainer(tiny_cfg, tmp_path, label_smoothing_enabled=False, focal_gamma=2.0).loss_fn
    y = torch.tensor([0, 1])
    easy, hard = torch.tensor([[4.0, 0, 0], [0, 4.0, 0]]), torch.tensor([[0, 4.0, 0], [4.0, 0, 0]])
    assert focal(easy, y) / ce(easy, y) < 0.01 and focal(hard, y) / ce(hard, y) > 0.9
    # mixup's soft targets, class weights and smoothing go through the same terms
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.6, 0.4]])
    assert focal(easy, soft) < ce(easy, soft)
    weighted = _trainer(tiny_cfg, tmp_path, focal_gamma=2.0, use_class_weights=True, weight_strategy="custom",
                        class_weights={"划痕": 1.0, "污点": 1.0, "异物": 1.0}).loss_fn
    assert weighted(hard, y) == pytest.approx(_trainer(tiny_cfg, tmp_path, focal_gamma=2.0).loss_fn(hard, y).item())
    assert _trainer(tiny_cfg, tmp_path, focal_gamma=0.0).loss_fn(hard, y) == pytest.approx(
        torch.nn.functional.cross_entropy(hard, y, label_smoothing=0.1).item())


@covers("advanced_augmentation_enabled", "mixup_alpha", "cutmix_prob", "use_augmentation")
def test_mixup_and_augmentation_switches(tiny_cfg, tmp_path):
    t = _trainer(tiny_cfg, tmp_path, advanced_augmentation_enabled=True, mixup_alpha=0.4, cutmix_prob=0.7,
                 use_augmentation=False)
    assert t.mixup is not None and t.mixup.mixup_alpha == 0.4 and t.mixup.switch_prob == 0.7
    assert t.augment.enabled is False
    x, y = t.mixup(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))
    assert y.shape == (4, 3)
    assert _trainer(tiny_cfg, tmp_path).mixup is None


@covers("metrics")
def test_metrics_key_selects_what_the_console_shows():
    from io import StringIO

    from rich.console import Console

    from trainpilot.engine.sinks import ConsoleSink

    out = StringIO()
    sink = ConsoleSink(Console(file=out, width=200), ["recall", "precision"])
    sink.emit({"phase": "train", "epoch": 1, "loss": 1.0, "lr": 0.1, "images_per_s": 10})
    sink.emit({"phase": "val", "epoch": 1, "loss": 0.9, "accuracy": 0.5, "macro_f1": 0.4, "recall": 0.3,
               "precision": 0.2, "ema_accuracy": None})
    text = out.getvalue()
    assert "recall 0.3000" in text and "precision 0.2000" in text and "macro_f1" not in text


@covers("model_ema", "model_ema_decay", "use_tensorboard", "monitor")
def test_run_outputs(tiny_run, tiny_cfg, tmp_path):
    assert _trainer(tiny_cfg, tmp_path, model_ema_decay=0.9).ema.decay == 0.9
    assert _trainer(tiny_cfg, tmp_path, model_ema=False).ema is None
    val = [r for r in tiny_run.history if r["phase"] == "val"]
    assert val and all(r["ema_accuracy"] is not None for r in val)
    run_json = json.loads((tiny_run.dir / "run.json").read_text())
    assert run_json["model_note"] == ""
    assert list((tiny_run.dir / "tensorboard").glob("events.out.tfevents.*"))
    best = torch.load(tiny_run.best_checkpoint, weights_only=True)
    assert best["source"] in ("raw", "ema") and best["monitor"] == "val_accuracy"


def test_best_checkpoint_ties_go_to_the_lower_val_loss(tiny_cfg, tmp_path):
    t = _trainer(tiny_cfg, tmp_path, model_ema=False)
    train = {"loss": 1.0, "accuracy": 0.5, "lr": 1e-3, "epoch_seconds": 1.0}
    val = lambda acc, loss: {"phase": "val", "val_accuracy": acc, "loss": loss, "eval_seconds": 0.1}  # noqa: E731
    assert t._record(1, dict(train), val(0.8, 0.6))
    assert not t._record(2, dict(train), val(0.8, 0.7))  # same accuracy, worse loss
    assert t._record(3, dict(train), val(0.8, 0.5)) and t.best["epoch"] == 3
    assert not t._record(4, dict(train), val(0.7, 0.1))


@covers("mixed_precision", "loss_scaling_enabled", "loss_scale", "static_loss_scale")
def test_precision_choice_is_measured_and_scaler_follows_keys(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    x = torch.zeros(2, 3, 8, 8)
    model(x)
    cpu = torch.device("cpu")
    monkeypatch.setattr(prec, "_cached_speedup", lambda key, measure: 2.0)
    fast = prec.choose_precision(build_config({"mixed_precision": True}), cpu, model, x)
    assert fast.autocast_dtype == torch.bfloat16
    monkeypatch.setattr(prec, "_cached_speedup", lambda key, measure: 0.5)
    slow = prec.choose_precision(build_config({"mixed_precision": True}), cpu, model, x)
    assert slow.autocast_dtype is None and "fp32" in slow.notice
    assert prec.choose_precision(build_config({"mixed_precision": False}), cpu, model, x).scaler is None
    assert prec.choose_precision(build_config({"loss_scaling_enabled": False}), cpu, model, x).scaler is None
    static = prec.choose_precision(build_config({"loss_scale": "static", "static_loss_scale": 64.0}), cpu, model, x)
    assert static.scaler.get_scale() == 64.0 and static.static_scale == 64.0
    speed = prec.measure_bf16_speedup(model, x)
    assert speed > 0


@covers("gradient_clipping", "gradient_clipping_value", "learning_rate", "weight_decay", "optimizer", "momentum")
def test_clipping_bounds_the_update(tiny_cfg, tmp_path):
    cfg = dict(optimizer="SGD", momentum=0.0, weight_decay=0.0, learning_rate=1.0, warmup_enabled=False,
               lr_scheduler="None", gradient_clipping=True, gradient_clipping_value=1e-3, model_ema=False)
    t = _trainer(tiny_cfg, tmp_path, **cfg)
    before = [p.detach().clone() for p in t.params]
    x, y = t.data.train.images[:8], t.data.train.labels[:8]
    t.schedule.apply(t.optimizer)
    t.loss_fn(t.model(t.augment.normalize(x)), y).backward()
    norm = t._optimizer_step(None)
    delta = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(t.params, before)))
    assert norm > 1e-3 and delta <= 1e-3 * 1.01


@covers("early_stopping", "early_stopping_patience", "num_epochs", "seed", "lr_step_size", "lr_gamma", "lr_patience")
def test_early_stopping_stops_and_can_be_disabled(tiny_cfg, tmp_path):
    import trainpilot

    frozen = dict(learning_rate=1e-9, warmup_enabled=False, min_lr=0.0, num_epochs=5, early_stopping_patience=1,
                  model_ema=False, use_augmentation=False)
    stopped = trainpilot.train({**tiny_cfg, **frozen}, runs_dir=tmp_path, quiet=True)
    assert stopped.summary["epochs"] < 5 and "early stopping" in stopped.summary["stop_reason"]
    full = trainpilot.train({**tiny_cfg, **frozen, "early_stopping": False, "num_epochs": 3}, runs_dir=tmp_path, quiet=True)
    assert full.summary["epochs"] == 3


@covers("model_save_dir", "model_filename", "default_param_save_dir", "timestamp", "tensorboard_log_dir", "task_type",
        "data_dir", "model_note")
def test_output_locations(tiny_cfg, tmp_path):
    import trainpilot

    run = trainpilot.train({**tiny_cfg, "num_epochs": 1, "model_save_dir": str(tmp_path / "models"),
                            "default_param_save_dir": str(tmp_path / "params"), "timestamp": "20250913-104847",
                            "use_tensorboard": True, "tensorboard_log_dir": str(tmp_path / "tb"), "model_note": "line A"},
                           runs_dir=tmp_path / "runs", quiet=True)
    stem = "mobilenetv3_small_050_20250913-104847"
    assert (tmp_path / "models" / f"{stem}_best.pt").exists() and (tmp_path / "models" / f"{stem}_last.pt").exists()
    saved = json.loads((tmp_path / "params" / f"{stem}_config.json").read_text())
    assert saved["model_note"] == "line A"
    assert list((tmp_path / "tb" / run.dir.name).glob("events.out.tfevents.*"))
    named = trainpilot.train({**tiny_cfg, "num_epochs": 1, "model_save_dir": str(tmp_path / "m2"),
                              "model_filename": "inspect_v1"}, runs_dir=tmp_path / "runs", quiet=True)
    assert (tmp_path / "m2" / "inspect_v1_best.pt").exists() and named.config.model_note == ""


@covers("train_cache_scale", "crop_scale_min", "color_jitter")
def test_train_crop_keys(tiny_cfg, tmp_path):
    t = _trainer(tiny_cfg, tmp_path, train_cache_scale=1.5)
    assert t.data.train.images.shape[-1] == 48 and t.data.val.images.shape[-1] == 32  # 32 px x 1.5
    x_u8, _ = next(iter(t._train_batches(1)))
    assert t.augment(x_u8).shape[-2:] == (32, 32)  # crops are resized to image_size
    t.augment.enabled = False  # without augmentation the larger train images are resized, not cropped
    assert t.augment(x_u8).shape[-2:] == (32, 32)
    plain = _trainer(tiny_cfg, tmp_path, train_cache_scale=1.0)
    assert plain.data.train.images.shape[-1] == 32

    def spread(**over):
        aug = _trainer(tiny_cfg, tmp_path, **over).augment
        aug.generator.manual_seed(0)
        grid = aug.crop_flip_grid(256, 8, 8)
        width = (grid[:, 0, -1, 0] - grid[:, 0, 0, 0]).abs() / 2 * 8 / 7  # crop sides as fractions
        height = (grid[:, -1, 0, 1] - grid[:, 0, 0, 1]).abs() / 2 * 8 / 7
        return (width * height).min().item()  # the smallest crop area drawn
    assert spread(crop_scale_min=0.9) > 0.75 > 0.2 > spread(crop_scale_min=0.1)  # (sides are clipped at 1)
    x = torch.full((4, 3, 32, 32), 100, dtype=torch.uint8)
    x[:, :, :16] = 50

    def jittered(value):
        aug = _trainer(tiny_cfg, tmp_path, color_jitter=value, crop_scale_min=1.0).augment
        aug.crop_flip_grid = lambda n, h, w: torch.stack(torch.meshgrid(  # noqa: E731 - no crop, no flip
            (torch.arange(w) * 2 + 1) / w - 1, (torch.arange(h) * 2 + 1) / h - 1, indexing="xy"), -1).expand(n, h, w, 2)
        return aug(x)
    assert torch.allclose(jittered(0.0), jittered(0.0)[:1].expand(4, -1, -1, -1))  # no jitter: all the same
    assert not torch.allclose(jittered(0.5), jittered(0.5)[:1].expand(4, -1, -1, -1))


@covers("rotation_degrees")
def test_rotation_key_turns_the_crops_within_its_angle(tiny_cfg, tmp_path):
    def angles(deg, h, w):  # each crop's first row as a direction in the source's pixels, in degrees from level
        aug = _trainer(tiny_cfg, tmp_path, rotation_degrees=deg).augment
        aug.generator.manual_seed(0)
        grid = aug.crop_flip_grid(256, h, w)
        row = grid[:, 0, -1] - grid[:, 0, 0]
        return torch.rad2deg(torch.atan2(row[:, 1].abs() * h, row[:, 0].abs() * w))  # flips do not count
    assert angles(0.0, 8, 8).max() == 0
    for h, w in ((8, 8), (8, 16)):  # a wide input turns by the same angles: no shear from its aspect
        a = angles(20.0, h, w)
        assert a.max() <= 20.001 and a.max() > 17 and 6 < a.mean() < 14, (h, w, a.max(), a.mean())


@covers("num_workers", "cache_images", "cache_max_gb", "device", "channels_last", "compile")
def test_runtime_keys(tiny_cfg, tmp_path):
    streamed = _trainer(tiny_cfg, tmp_path, cache_images="never", num_workers=1)
    x, y = next(iter(streamed._train_batches(1)))
    assert x.dtype == torch.uint8 and not streamed.data.cached
    auto_small = _trainer(tiny_cfg, tmp_path, cache_max_gb=1e-6)
    assert not auto_small.data.cached
    t = _trainer(tiny_cfg, tmp_path, device="cpu", channels_last=True)
    assert t.model.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    from torch._dynamo.eval_frame import OptimizedModule

    assert isinstance(_trainer(tiny_cfg, tmp_path, compile=True).forward_model, OptimizedModule)
    assert not isinstance(t.forward_model, OptimizedModule)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'device'"):
            _trainer(tiny_cfg, tmp_path, device="cuda")


@covers("sampler")
def test_sampler_draws_minority_classes_more_often(tmp_path):
    """shuffle sees every image once; sqrt and balanced draw classes ~ count**0.5 and equally, same epoch length."""
    from trainpilot.data.synthetic import make_defect_dataset

    data = make_defect_dataset(tmp_path / "imb", per_class=40, image_size=32, seed=3, classes=("a", "b"),
                               counts={"b": 8}, splits={"train": 0.5, "val": 0.5})
    cfg = {**TINY, "data_dir": str(data), "recipe": "off"}
    shares = {}
    for sampler in ("shuffle", "sqrt", "balanced"):
        t, _ = build_trainer({**cfg, "sampler": sampler}, runs_dir=tmp_path)
        orders = [t._epoch_order(e) for e in range(1, 41)]
        assert all(len(o) == len(t.data.train) for o in orders)
        labels = torch.cat([t.data.train.labels[o] for o in orders])
        shares[sampler] = (labels == 1).float().mean().item()
        if sampler == "shuffle":
            assert all(sorted(o.tolist()) == list(range(len(t.data.train))) for o in orders)
    assert shares["shuffle"] == pytest.approx(4 / 24)  # 20 vs 4 training images
    assert shares["sqrt"] == pytest.approx(2 / (2 + 20 ** 0.5), abs=0.03)
    assert shares["balanced"] == pytest.approx(0.5, abs=0.03)


@covers("test_time_augmentation")
def test_test_time_augmentation_averages_flips_when_validation_says_so(tmp_path):
    """The rule: flips when they score at least as well and lower the log-loss (or when forced); in a run,
    best.pt, the summary and the final evaluation agree, and off fits nothing."""
    import trainpilot
    from trainpilot.data.synthetic import make_defect_dataset
    from trainpilot.tta import FlipAveraged, choose

    labels = torch.tensor([0, 0, 1, 1])
    single = torch.tensor([[0.6, 0.4], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]]).log()  # one error
    better = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]).log()  # none, lower loss
    surer_wrong = torch.tensor([[0.6, 0.4], [0.1, 0.9], [0.3, 0.7], [0.2, 0.8]]).log()  # same error, higher loss
    assert choose(single, better, labels, "accuracy").used
    no = choose(single, surer_wrong, labels, "accuracy")
    assert not no.used and "not better on validation" in no.reason
    assert choose(single, surer_wrong, labels, "accuracy", forced=True).used

    data = make_defect_dataset(tmp_path / "d", per_class=16, image_size=32, seed=5, classes=("a", "b"),
                               splits={"train": 0.5, "val": 0.5})
    for mode in ("flips", "off"):
        run = trainpilot.train({**TINY, "data_dir": str(data), "test_time_augmentation": mode},
                               runs_dir=tmp_path / mode, quiet=True)
        best = torch.load(run.dir / "checkpoints" / "best.pt", weights_only=True)
        model = load_trained_model(run.dir)
        if mode == "off":
            assert "tta" not in best and "test_time_augmentation" not in run.summary
            assert not isinstance(model, FlipAveraged) and run.summary["final"]["val"]["flips"] is False
            continue
        assert best["tta"] == run.summary["test_time_augmentation"] and best["tta"]["used"]
        assert "test_time_augmentation=flips" in best["tta"]["reason"] and isinstance(model, FlipAveraged)
        assert run.summary["final"]["val"]["flips"] is True
        assert run.summary["final"]["val"]["accuracy"] == pytest.approx(best["tta"]["flips"], abs=1e-6)


def load_trained_model(run_dir):
    from trainpilot.inference import load_trained

    return load_trained(run_dir).model


@covers("logit_adjustment")
def test_logit_adjustment_takes_the_training_prior_out(tmp_path):
    """A model biased towards the class it saw 5x more often: tau ~ 1 removes that prior on validation;
    equal shares change nothing; in a run, best.pt's record matches its val evaluation, and off fits nothing."""
    import trainpilot
    from trainpilot.data.synthetic import make_defect_dataset
    from trainpilot.priors import choose, training_shares

    shares = training_shares([40, 8], "shuffle", None, ["a", "b"])
    assert shares.tolist() == pytest.approx([5 / 6, 1 / 6])
    margin = torch.cat([torch.linspace(-4.0, -2.0, 10), torch.linspace(-1.5, 0.5, 10)])  # log p(b) - log p(a)
    log_probs = torch.stack([torch.zeros(20), margin], 1).log_softmax(1)
    labels = torch.tensor([0] * 10 + [1] * 10)
    adj = choose(log_probs, labels, shares, "macro_f1")
    assert 0.75 <= adj.tau <= 1.25 and adj.after == 1.0 > adj.before, adj
    assert adj.bias[1] - adj.bias[0] == pytest.approx(adj.tau * math.log(5), abs=1e-5)
    for equal in (training_shares([40, 8], "balanced", None, ["a", "b"]),
                  training_shares([40, 8], "shuffle", {"a": 0.6, "b": 3.0}, ["a", "b"])):
        flat = choose(log_probs, labels, equal, "macro_f1")
        assert flat.tau == 0 and flat.bias == [0.0, 0.0] and "equally" in flat.reason

    data = make_defect_dataset(tmp_path / "imb", per_class=40, image_size=32, seed=3, classes=("a", "b"),
                               counts={"b": 10}, splits={"train": 0.5, "val": 0.5})
    for mode in ("auto", "off"):
        run = trainpilot.train({**TINY, "data_dir": str(data), "logit_adjustment": mode, "monitor": "val_macro_f1"},
                               runs_dir=tmp_path / mode, quiet=True)
        best = torch.load(run.dir / "checkpoints" / "best.pt", weights_only=True)
        if mode == "off":
            assert "logit_adjustment" not in best and "logit_adjustment" not in run.summary
            continue
        record = best["logit_adjustment"]
        assert record == run.summary["logit_adjustment"] and record["shares"] == pytest.approx([0.8, 0.2], abs=0.01)
        assert set(record["scores"]) == {f"{t:g}" for t in (0, .25, .5, .75, 1, 1.25, 1.5, 1.75, 2)}
        assert record["before"] == record["scores"]["0"] and record["after"] == record["scores"][f"{record['tau']:g}"]
        assert run.summary["final"]["val"]["macro_f1"] == pytest.approx(record["after"], abs=1e-6)
        assert ("logit_bias" in best) is (record["tau"] > 0)


def test_each_epoch_is_also_scored_with_the_training_prior_taken_out(tmp_path):
    """With unequal shares and logit_adjustment on, every val record carries prior_corrected: the metrics of the
    scores plus the tau-1 prior bias, the same figure the end-of-run fit scores for tau 1 on best.pt; with
    equal shares (a balanced sampler) or logit_adjustment off there is nothing to correct and no such record."""
    import trainpilot
    from trainpilot.data.synthetic import make_defect_dataset

    data = make_defect_dataset(tmp_path / "imb", per_class=40, image_size=32, seed=3, classes=("a", "b"),
                               counts={"b": 10}, splits={"train": 0.5, "val": 0.5})
    plain = {**TINY, "data_dir": str(data), "monitor": "val_macro_f1", "model_ema": False,
             "test_time_augmentation": "off", "num_epochs": 3}
    run = trainpilot.train(plain, runs_dir=tmp_path / "auto", quiet=True)
    vals = {r["epoch"]: r for r in run.history if r["phase"] == "val"}
    assert all(set(r["prior_corrected"]) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
               for r in vals.values())
    fitted = run.summary["logit_adjustment"]["scores"]["1"]
    assert vals[run.summary["best_epoch"]]["prior_corrected"]["macro_f1"] == pytest.approx(fitted, abs=1e-6)
    for extra in ({"sampler": "balanced"}, {"logit_adjustment": "off"}):
        run = trainpilot.train({**plain, **extra, "num_epochs": 1}, runs_dir=tmp_path / "none", quiet=True)
        assert all("prior_corrected" not in r for r in run.history if r["phase"] == "val"), extra


@covers("suspect_labels")
def test_suspect_labels_list_the_training_images_the_model_contradicts(tmp_path):
    """Per-class thresholds: an image is a suspect when another class reaches its own bar and beats the
    rest; in a run, images filed under the wrong class are listed, and off writes nothing."""
    import trainpilot
    from trainpilot.data.synthetic import make_defect_dataset
    from trainpilot.suspects import confident_suspects

    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.85, 0.05],  # filed under 0; the third looks like 1
                          [0.2, 0.8, 0.0], [0.3, 0.7, 0.0],                      # filed under 1
                          [0.3, 0.3, 0.4], [0.4, 0.2, 0.4]])                     # a hard class 2 (self-confidence 0.4)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert confident_suspects(probs, labels) == [(2, 1)]  # class 2's low bar keeps its own images; 0.4 < 0.6 for 0

    data = _neu_two_classes(tmp_path)  # three "patches" filed under "scratches"; the packaged ImageNet lite0
    # lr 5e-3: the zero-initialised head of 3 short epochs (12 steps) at 2e-3 still hedges on the moved images
    cfg = {**TINY, "model_name": "tf_efficientnet_lite0", "use_pretrained": True, "image_size": 48, "batch_size": 16,
           "num_epochs": 3, "learning_rate": 5e-3, "data_dir": str(data)}
    run = trainpilot.train(cfg, runs_dir=tmp_path / "on", quiet=True)
    rec = run.summary["suspect_labels"]
    rows = (run.dir / rec["file"]).read_text(encoding="utf-8-sig").splitlines()
    assert rows[0] == "file,label,suggested,p_label,p_suggested" and rec["images"] == 60 and rec["count"] == len(rows) - 1
    listed = [r.split(",") for r in rows[1:]]
    hits = [r for r in listed if "moved_" in r[0]]
    assert len(hits) >= 2 and all(r[1:3] == ["scratches", "patches"] for r in hits), rows  # 2 of the 3, at least
    assert len(listed) <= 8, rows  # a short list: 2 of 3 moved among 8 of 60 images is far from chance (3/60)
    assert [float(r[3]) for r in listed] == sorted(float(r[3]) for r in listed)  # most doubtful first
    from trainpilot.runs import Run

    assert [r["file"] for r in Run.open(run.dir).suspect_labels] == [r[0] for r in listed]  # the one reader
    page = (run.dir / "reports" / "summary.html").read_text(encoding="utf-8")
    assert "Training images that look mislabelled" in page and hits[0][0] in page
    assert page.count('<img class="thumb" src="data:image/jpeg;base64,') == min(20, len(listed))  # a look at each
    assert rec["weak_model"] is False and "says little" not in page
    from trainpilot.reports.html import write_summary_html

    weak = {**rec, "weak_model": True}  # a model that contradicts over a third of its labels: the list means little
    assert "says little about the labels" in write_summary_html(run.dir, "en", weak).read_text(encoding="utf-8")
    assert "参考价值很低" in write_summary_html(run.dir, "zh", weak).read_text(encoding="utf-8")
    tiny = make_defect_dataset(tmp_path / "tiny", per_class=8, image_size=32, seed=4, classes=("a", "b"))
    off = trainpilot.train({**TINY, "data_dir": str(tiny), "num_epochs": 1, "suspect_labels": False},
                           runs_dir=tmp_path / "off", quiet=True)
    assert "suspect_labels" not in off.summary and not (off.dir / "reports" / "suspect_labels.csv").exists()


def _neu_two_classes(tmp_path, moved: int = 3):
    """Real neu-cls images, two classes, ``moved`` "patches" filed under "scratches" (as moved_*)."""
    data = tmp_path / "neu2"
    for split, n in (("train", 30), ("val", 15)):
        for c in ("patches", "scratches"):
            (data / split / c).mkdir(parents=True)
            for f in sorted((NEU / split / c).iterdir())[:n]:
                (data / split / c / f.name).symlink_to(f)
    for f in sorted((data / "train" / "patches").iterdir())[:moved]:
        f.rename(data / "train" / "scratches" / f"moved_{f.name}")
    return data


@covers("drop_suspect_labels")
def test_drop_suspect_labels_trains_without_the_contradicted_images(tmp_path):
    """After 3 epochs the model scores the training images; those it contradicts (the moved ones) are no
    longer drawn, the epoch keeps its length, off draws everything again, a class is never emptied, and
    the state survives a resume."""
    import trainpilot
    from trainpilot.engine import label_filter

    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8]])
    assert label_filter.keep_mask(probs, torch.tensor([0, 0, 1])).tolist() == [True, False, True]
    assert label_filter.keep_mask(probs[1:], torch.tensor([0, 1])).tolist() == [True, True]  # class 0's only image

    data = _neu_two_classes(tmp_path)
    cfg = {**TINY, "model_name": "tf_efficientnet_lite0", "use_pretrained": True, "image_size": 48, "batch_size": 16,
           "num_epochs": 5, "learning_rate": 5e-3, "data_dir": str(data), "drop_suspect_labels": True,
           "suspect_labels": False}
    run = trainpilot.train(cfg, runs_dir=tmp_path / "on", quiet=True)
    train = [r for r in run.history if r["phase"] == "train"]
    assert [r.get("left_out") for r in train[:3]] == [None] * 3 and train[3]["left_out"] >= 1, train  # from epoch 4
    (note,) = run.summary["label_filter"]
    assert f"{train[3]['left_out']} of 60 training images left out after epoch 3" in note
    state = torch.load(run.dir / "checkpoints" / "last.pt", weights_only=True)["label_filter"]
    assert state["scored_at"] == 3 and int((~state["keep"]).sum()) == train[4]["left_out"]
    t, _ = build_trainer({**cfg, "num_epochs": 6}, runs_dir=tmp_path / "probe")
    t.load_state_dict(torch.load(run.dir / "checkpoints" / "last.pt", weights_only=True))
    names = [p.name for p in t.data.index.train.paths]
    dropped = {names[i] for i in torch.nonzero(~t.label_filter.keep).flatten().tolist()}
    # the moved images first (how many of the 3 a 3-epoch model already contradicts differs between CPUs), few others
    assert sum(n.startswith("moved_") for n in dropped) >= 1 and len(dropped) <= 8, dropped
    for epoch in (6, 7):
        order = t._epoch_order(epoch)
        assert len(order) == 60 and not dropped & {names[i] for i in order.tolist()}
    t.apply_changes({"drop_suspect_labels": False})
    assert t.label_filter.keep is None and sorted(t._epoch_order(6).tolist()) == list(range(60))
    t.apply_changes({"drop_suspect_labels": True, "sampler": "balanced"})  # scored at once (epoch 5 >= 3)
    order = t._epoch_order(6)
    assert t.label_filter.scored_at == 5 and len(order) == 60
    assert not {names[i] for i in torch.nonzero(~t.label_filter.keep).flatten().tolist()} & {names[i] for i in order.tolist()}
    off = trainpilot.train({**cfg, "num_epochs": 4, "drop_suspect_labels": False}, runs_dir=tmp_path / "off", quiet=True)
    assert "label_filter" not in off.summary and all("left_out" not in r for r in off.history)


@covers("resize_mode")
def test_letterbox_keeps_the_aspect_ratio(tmp_path):
    from PIL import Image

    from trainpilot.data.images import Geometry, decode_image

    img = Image.new("RGB", (120, 40), (200, 10, 10))
    img.paste((10, 200, 10), (0, 0, 60, 40))
    img.save(tmp_path / "wide.png")
    squash = decode_image(tmp_path / "wide.png", Geometry(30, 30, "squash"))
    box = decode_image(tmp_path / "wide.png", Geometry(30, 30, "letterbox"))
    assert squash.shape == box.shape == (30, 30, 3)
    assert (squash[0, 5] == (10, 200, 10)).all() and (squash[-1, 25] == (200, 10, 10)).all()  # stretched to fill
    fill = box[0, 0]
    assert (box[:9] == fill).all() and (box[-9:] == fill).all()  # padded above and below with one colour
    assert abs(int(fill[0]) - 105) <= 2  # the image's mean colour
    assert (box[15, 5] == (10, 200, 10)).all() and (box[15, 25] == (200, 10, 10)).all()  # content 30 x 10, centred
    trainer, _ = build_trainer({**TINY, "data_dir": str(SEED_DIR.parent / "datasets" / "xsdd"), "image_size": 32,
                                "resize_mode": "letterbox", "train_cache_scale": 1.0, "recipe": "off"},
                               runs_dir=tmp_path)
    assert trainer.cfg.resize_mode == "letterbox" and trainer.data.val.images.shape[-1] == 32


@covers("input_aspect", "rotate_to_fit")
def test_a_wide_input_and_turning_tall_images_to_fit_it(tmp_path):
    from PIL import Image

    from trainpilot.data.images import Geometry, decode_image, input_hw

    assert input_hw(64, 2.0) == (32, 64) and input_hw(64, 0.5) == (64, 32) and input_hw(64, 1.0) == (64, 64)
    tall = Image.new("RGB", (40, 120), (200, 10, 10))
    tall.paste((10, 200, 10), (0, 0, 40, 60))  # top half green
    tall.save(tmp_path / "tall.png")
    kept = decode_image(tmp_path / "tall.png", Geometry(32, 64, "letterbox"))
    turned = decode_image(tmp_path / "tall.png", Geometry(32, 64, "letterbox", rotate=True))
    assert kept.shape == turned.shape == (32, 64, 3)
    # kept upright, the part is 11 px wide in a 64 px row; turned, it fills the row (green on the left)
    assert (kept[16, :20] == kept[0, 0]).all() and not (turned[16, :20] == turned[0, 0]).all()
    assert (turned[16, 5] == (10, 200, 10)).all() and (turned[16, 58] == (200, 10, 10)).all()
    base = {**TINY, "data_dir": str(SEED_DIR.parent / "datasets" / "xsdd"), "image_size": 64, "resize_mode": "letterbox",
            "recipe": "off", "num_epochs": 1}
    trainer, _ = build_trainer({**base, "input_aspect": 2.0, "rotate_to_fit": True}, runs_dir=tmp_path)
    assert tuple(trainer.data.val.images.shape[-2:]) == (32, 64) and tuple(trainer.data.train.images.shape[-2:]) == (40, 80)
    assert trainer.augment(trainer.data.train.images[:4]).shape[-2:] == (32, 64)
    tall_cfg = build_config({**base, "input_aspect": 0.5})
    assert Geometry.of(tall_cfg) == Geometry(64, 32, "letterbox", False)
    _, notices = build_trainer({**base, "rotate_to_fit": True}, runs_dir=tmp_path)  # a square input: said so
    assert any("rotate_to_fit=true does nothing with a square input" in n for n in notices)


@covers("time_budget_minutes")
def test_time_budget_cuts_epochs_and_replans_the_schedule(tiny_cfg, tmp_path):
    import trainpilot

    run = trainpilot.train({**tiny_cfg, "num_epochs": 30, "time_budget_minutes": 1e-4, "early_stopping": False},
                           runs_dir=tmp_path, quiet=True)
    assert run.summary["epochs"] == 1 and run.config.num_epochs == 1
    assert "num_epochs 30 -> 1 after epoch 1" in run.summary["time_budget"][0]
    free = trainpilot.train({**tiny_cfg, "num_epochs": 2}, runs_dir=tmp_path, quiet=True)
    assert free.summary["epochs"] == 2 and free.summary["time_budget"] == []


def test_a_busy_spell_cuts_the_time_budget_plan_only_while_it_lasts(tiny_cfg, tmp_path):
    from trainpilot.engine.budget import epochs_that_fit

    budget = 600.0  # 10 minutes; epochs of 20 s, but the first three took 60 s (another job on the machine)
    busy = [60.0, 60.0, 60.0]
    assert epochs_that_fit(busy, budget, planned=40, cap=40) == 10      # 420 s left at 60 s: 7 more
    fast = busy + [20.0] * 3
    assert epochs_that_fit(fast, budget, planned=10, cap=40) == 23      # 360 s left at 20 s: 24 fit, one spare
    assert epochs_that_fit(fast, budget, planned=10, cap=12) == 12      # never past the plan before the cut
    assert epochs_that_fit(fast, budget, planned=23, cap=40) == 23      # 24 fit: kept, not re-planned by one
    assert epochs_that_fit(fast, budget, planned=25, cap=40) == 24      # 25 do not fit: cut
    assert epochs_that_fit([700.0], budget, planned=40, cap=40) == 1    # never below the epochs done

    tr, _ = build_trainer({**tiny_cfg, "num_epochs": 40, "time_budget_minutes": 10}, runs_dir=tmp_path)
    spe = tr.steps_per_epoch()
    for epoch, seconds in enumerate([60.0, 60.0, 60.0, 20.0, 20.0, 20.0], start=1):
        tr.history.append({"phase": "val", "epoch": epoch, "epoch_seconds": seconds})
        tr.epoch = epoch
        tr._fit_time_budget(epoch)
        if epoch == 3:
            assert tr.cfg.num_epochs == 10 and tr.schedule.total_steps == 10 * spe
    assert tr.cfg.num_epochs == 23 and tr.schedule.total_steps == 23 * spe  # the lr schedule ends there too
    assert [n.split(": ")[1].split(" after")[0] for n in tr.budget_notes] == [
        "num_epochs 40 -> 10", "num_epochs 10 -> 11", "num_epochs 11 -> 15", "num_epochs 15 -> 23"]  # given back as it speeds up
    assert tr.state_dict()["budget_cap"] == 40


@covers("recipe")
def test_recipe_off_keeps_the_listed_defaults(tiny_cfg, tmp_path):
    auto, _ = build_trainer({**tiny_cfg, "recipe": "auto"}, runs_dir=tmp_path)
    off, _ = build_trainer(tiny_cfg, runs_dir=tmp_path)
    assert auto.cfg.monitor == "val_macro_f1" and [c["key"] for c in auto.recipe["choices"]][0] == "monitor"
    assert off.cfg.monitor == "val_accuracy" and off.recipe["choices"] == []


def test_every_seed_key_is_covered_by_a_test():
    seed_keys = set(json.loads((SEED_DIR / "original_config.json").read_text()))
    # keys proved in other test modules: warmup_*/min_lr*/lr_scheduler/beta*/nesterov (test_schedule.py)
    elsewhere = {"warmup_enabled", "warmup_steps", "warmup_ratio", "warmup_method", "min_lr_enabled", "min_lr",
                 "lr_scheduler", "beta1", "beta2", "nesterov"}
    missing = seed_keys - COVERED - elsewhere
    assert not missing, f"seed keys without an effect test: {sorted(missing)}"
    new_keys = set(TrainConfig.model_fields) - seed_keys - {"intelligent_training"}
    assert not new_keys - COVERED, f"new keys without an effect test: {sorted(new_keys - COVERED)}"
