"""The automatic recipe: settings chosen from what the data is, for the keys the user did not set.

It runs once, at scan time, before any image is decoded, and reads a
:class:`~trainpilot.data.profile.DataProfile` (class counts, image sizes, colour, set size). Every
choice is a :class:`Choice` with its reason; the run prints them in one block and records them in
``run.json`` and the summary. A key the user set (on the command line, in a config file, or any key
of a seed config) is never changed, and ``recipe=off`` turns the whole recipe off.

The rules read the data rather than fit one benchmark:

* **monitor**: macro-F1, which weighs every class equally; accuracy rewards the majority class.
* **weights**: pretrained ImageNet weights where they exist offline (the packaged
  tf_efficientnet_lite0 when no model is named), since fine-tuning beats training from scratch on a
  few hundred images per class.
* **sampler**: beyond a 3:1 class ratio, classes are drawn in proportion to the square root of their
  counts, so every batch shows the minority classes without repeating a few images endlessly; the
  tuning controller adds loss weights when minority recall still lags.
* **geometry**: letterbox when a tenth of the images are longer than 1.25:1, so parts keep their shape,
  into an input of their median aspect ratio (up to 3:1), turning the images of the other orientation
  when there are some, so that no pixel of the input is spent on padding; the input's long side follows
  the images' (no downscaling of small defects) within 128-224 px for a square (as many pixels for a
  non-square input), and with ``time_budget_minutes`` set, shrinks until 10 epochs fit the budget (15 from
  scratch), timed on this CPU as the run will train (its batch size, bf16 autocast where that is faster):
  ImageNet features fine-tune in fewer epochs, and small defects need the pixels more than extra passes.
* **epochs**: about 24,000 training images seen (15 to 60 epochs), so small sets get more passes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from trainpilot.config import TrainConfig, build_config
from trainpilot.data.images import input_hw
from trainpilot.data.profile import ELONGATED, DataProfile
from trainpilot.models import offline_weights

DEFAULT_PRETRAINED = "tf_efficientnet_lite0"
SAMPLER_FROM = 3.0        # class-count ratio from which the sqrt sampler is used
LETTERBOX_SHARE = 0.1     # share of elongated images from which the aspect ratio is kept
SIZE_RANGE = (128, 224)   # input size bounds (pixels): below, ImageNet features fade; above, CPU time explodes
SIZE_RANGE_SCRATCH = (64, 224)
ASPECT_RANGE = (1.25, 3.0)  # a non-square input from this elongation, and at most this long
IMAGES_SEEN = 24_000      # training images per run (epochs x set size)
EPOCH_RANGE = (15, 60)
FIT_EPOCHS = 10           # epochs that must fit the time budget at the chosen size (pretrained weights) ...
FIT_EPOCHS_SCRATCH = 15   # ... and from scratch, which needs more passes
TRAIN_STEP_OVERHEAD = 1.3  # a training step (augmentation, optimizer, EMA) vs the probe's forward + backward
PROBE_BATCH_MAX = 64       # the probe times batches of batch_size, up to this many images


@dataclass(frozen=True)
class Choice:
    key: str
    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def round32(x: float) -> int:
    return int(32 * round(x / 32))


def seconds_per_image(model_name: str, num_classes: int, size: int, batch: int = 32, bf16: bool = False) -> float:
    """Measured forward + backward time per training image of ``model_name`` at ``size`` px on the CPU, in
    batches of ``batch``, in fp32 or under bf16 autocast (as the run will train: see engine.precision)."""
    import timm
    import torch

    from trainpilot.engine.precision import time_steps
    from trainpilot.models import resolve_model_name

    with torch.random.fork_rng(devices=[]):
        model = timm.create_model(resolve_model_name(model_name), num_classes=num_classes).train()
        x = torch.randn(batch, 3, size, size)
    model = model.to(memory_format=torch.channels_last)
    return time_steps(model, x.contiguous(memory_format=torch.channels_last), torch.bfloat16 if bf16 else None) / batch


def _input_shape(cfg: TrainConfig, p: DataProfile, free) -> list[Choice]:
    """A non-square input for letterboxed elongated images: the same long side, so the same detail, with
    little padding; at the same cost, a longer side (see the image_size choice)."""
    if p.elongated_share < LETTERBOX_SHARE or not free("input_aspect"):
        return []
    other = min(p.wide_share, 1 - p.wide_share)  # elongated images of the minority orientation
    rotate = cfg.rotate_to_fit if not free("rotate_to_fit") else other >= LETTERBOX_SHARE
    ratio = (p.median_aspect if p.wide_share >= 0.5 else 1 / p.median_aspect) if rotate else p.median_width_ratio
    ratio = min(ASPECT_RANGE[1], max(1 / ASPECT_RANGE[1], ratio))
    elongation = max(ratio, 1 / ratio)
    if elongation < ASPECT_RANGE[0]:
        return []  # most images are near-square: a square input wastes little
    out, shape = [], "wide" if ratio > 1 else "tall"
    if rotate and free("rotate_to_fit"):
        out.append(Choice("rotate_to_fit", True, f"{other:.0%} of the elongated images are "
                          f"{'tall' if shape == 'wide' else 'wide'}, the rest {shape}: each is turned to the input's "
                          f"orientation instead of shrinking into it (augmentation flips both axes, so orientation "
                          f"is not taken to carry the class)"))
    out.append(Choice("input_aspect", round(ratio, 2), f"the images are mostly {shape}, median {elongation:.3g}:1: a "
                      f"{shape} input holds them at {math.sqrt(elongation):.2g}x the resolution of a square one of "
                      f"as many pixels, with less padding"))
    return out


def _size_within_budget(model: str, k: int, size: int, lo: int, cfg: TrainConfig, p: DataProfile,
                        epochs: int, elongation: float = 1.0) -> tuple[int, float]:
    """The largest input size (a multiple of 32, at least ``lo``) at which ``epochs`` epochs fit the time
    budget, and the estimated seconds per epoch there (nan where the probe does not apply). ``size`` is the
    long side of an input ``elongation`` times as long as it is wide."""
    if cfg.device not in ("auto", "cpu"):
        return size, math.nan  # the probe times the CPU; on an accelerator the size is not the bottleneck
    import torch

    if cfg.device == "auto" and (torch.cuda.is_available() or torch.backends.mps.is_available()):
        return size, math.nan
    from trainpilot.engine.precision import MIN_SPEEDUP

    side = round32(lo / math.sqrt(elongation))  # the square of as many pixels as the smallest input
    batch = min(cfg.batch_size, PROBE_BATCH_MAX)
    per_image = seconds_per_image(model, k, side, batch)
    if cfg.mixed_precision:  # the run trains under bf16 autocast where that is measured faster: time that
        bf16 = seconds_per_image(model, k, side, batch, bf16=True)
        per_image = bf16 if per_image / bf16 >= MIN_SPEEDUP else per_image
    per_image *= TRAIN_STEP_OVERHEAD
    budget = cfg.time_budget_minutes * 60 * 0.9  # some room for evaluation and checkpoints
    epoch_s = lambda px: (p.images + p.val_images / 3) * per_image * px ** 2 / elongation / side ** 2  # noqa: E731 - eval: no backward
    while size > lo and epochs * epoch_s(size) > budget:
        size -= 32
    return max(lo, size), epoch_s(max(lo, size))


def choose(cfg: TrainConfig, profile: DataProfile, explicit: set[str]) -> list[Choice]:
    """The automatic choices for ``cfg`` (keys in ``explicit`` are left alone); nothing is applied here."""
    if cfg.recipe == "off":
        return []
    free = lambda key: key not in explicit  # noqa: E731
    out: list[Choice] = []
    ratio = profile.imbalance_ratio
    if free("monitor"):
        why = (f"classes are imbalanced {ratio:.3g}:1 ({profile.majority_class} {max(profile.counts)}, "
               f"{profile.minority_class} {min(profile.counts)}): macro-F1 weighs every class equally, accuracy "
               f"rewards the majority class" if ratio >= 1.5 else
               "macro-F1 weighs every class equally: on balanced data it ranks checkpoints like accuracy, and it "
               "still sees a class the model misses")
        out.append(Choice("monitor", "val_macro_f1", why))

    pretrained = cfg.use_pretrained or bool(cfg.pretrained_path)
    if free("use_pretrained") and not cfg.pretrained_path:
        if free("model_name"):
            source = offline_weights(DEFAULT_PRETRAINED)
            if source:
                out.append(Choice("model_name", DEFAULT_PRETRAINED, f"ImageNet weights for it are available offline "
                                  f"({source}); fine-tuning beats training from scratch on {profile.images} images"))
                out.append(Choice("use_pretrained", True, "start from those ImageNet weights"))
                pretrained = True
        else:
            source = offline_weights(cfg.model_name)
            out.append(Choice("use_pretrained", bool(source), f"ImageNet weights for {cfg.model_name} are available "
                              f"offline ({source})" if source else f"no offline ImageNet weights for {cfg.model_name}: "
                              f"from scratch (set use_pretrained=true where the hub is reachable)"))
            pretrained = bool(source)

    if free("resize_mode") and profile.elongated_share >= LETTERBOX_SHARE:
        out.append(Choice("resize_mode", "letterbox", f"{profile.elongated_share:.0%} of the images are longer than "
                          f"{ELONGATED}:1 (median {profile.median_width}x{profile.median_height} px): letterbox keeps "
                          f"their shape instead of squashing them into a square"))
    letterbox = dict((c.key, c.value) for c in out).get("resize_mode", cfg.resize_mode) == "letterbox"
    if letterbox:
        out += _input_shape(cfg, profile, free)
    chosen = dict((c.key, c.value) for c in out)
    aspect = float(chosen.get("input_aspect", cfg.input_aspect))
    epochs = min(EPOCH_RANGE[1], max(EPOCH_RANGE[0], round(IMAGES_SEEN / max(1, profile.images))))
    if free("image_size"):
        lo, hi = SIZE_RANGE if pretrained else SIZE_RANGE_SCRATCH
        k = math.sqrt(max(aspect, 1 / aspect))  # long side / the side of a square of as many pixels
        lo, hi = round32(lo * k), round32(hi * k)
        long_side = letterbox or k > 1
        side = profile.median_long_side if long_side else math.sqrt(profile.median_width * profile.median_height)
        size = min(hi, max(lo, round32(side)))
        how = ("above the images' size: ImageNet features need some resolution" if size > side * 1.2 else
               "below the images' size: bounded for training time" if size < side / 1.2 else
               "about the images' own size, so small defects are not scaled away")
        why = f"median {'long side' if long_side else 'side'} {side:.0f} px; {size} px is {how}"
        if cfg.time_budget_minutes > 0 and size > lo:
            model = chosen.get("model_name", cfg.model_name)
            n_fit = min(cfg.num_epochs if not free("num_epochs") else epochs,
                        FIT_EPOCHS if pretrained else FIT_EPOCHS_SCRATCH)
            fit, epoch_s = _size_within_budget(model, len(profile.classes), size, lo, cfg, profile, n_fit, k * k)
            if fit < size:
                why += (f"; {fit} px instead, so that {n_fit} epochs fit in "
                        f"time_budget_minutes={cfg.time_budget_minutes:g} (about {epoch_s:.0f} s per epoch there, "
                        f"timed on this machine)")
                size = fit
        if k > 1:
            h, w = input_hw(size, aspect)
            why += f" (a {w}x{h} input)"
        out.append(Choice("image_size", size, why))

    if ratio >= SAMPLER_FROM and free("sampler") and free("use_class_weights"):
        out.append(Choice("sampler", "sqrt", f"{ratio:.3g}:1 class counts: classes are drawn in proportion to the square "
                          f"root of their counts ({math.sqrt(ratio):.2g}:1 per batch instead of {ratio:.3g}:1) from "
                          f"epoch 1; the tuning controller adds loss weights if minority recall still lags"))

    if free("num_epochs"):
        out.append(Choice("num_epochs", epochs, f"{profile.images} training images: {epochs} epochs see about "
                          f"{epochs * profile.images:,} images (early stopping may end sooner)"))
    return out


def apply_recipe(cfg: TrainConfig, profile: DataProfile) -> tuple[TrainConfig, list[Choice]]:
    """``cfg`` with the automatic choices for the keys it does not set, and the choices themselves."""
    choices = choose(cfg, profile, set(cfg.model_fields_set))
    if not choices:
        return cfg, []
    data = cfg.model_dump(mode="json", exclude_unset=True)
    data.update({c.key: c.value for c in choices})
    return build_config(data), choices


def format_choices(choices: list[Choice]) -> list[str]:
    """One line per choice, for the block printed at the start of a run."""
    return [f"{c.key} = {c.value}: {c.reason}" for c in choices]
