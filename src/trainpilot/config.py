"""TrainConfig: every setting trainpilot understands, defined once.

Each key has its type, default, bounds and help text here; validation, the README's config
reference (:mod:`trainpilot.config_reference`) and the tuning controller's action schema are all
derived from this module.
The seed application's 52 keys load verbatim (Chinese class names and Windows paths included);
the keys it added are marked ``[new]`` in their help text.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainpilot.llm_settings import LLMSettings

OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "RAdam", "AdaBelief")
SCHEDULERS = (
    "StepLR", "MultiStepLR", "CosineAnnealingLR", "ReduceLROnPlateau",
    "OneCycleLR", "CyclicLR", "ExponentialLR", "None",
)
ACTIVATIONS = ("None", "ReLU", "SiLU", "GELU", "Hardswish", "Mish")
METRICS = ("accuracy", "macro_f1", "precision", "recall")


class ConfigError(ValueError):
    """A user-facing configuration problem; its message is one line naming the key and the fix."""


def _f(default: Any, help: str, *, tunable: str | None = None, **bounds: Any) -> Any:
    """A schema field; ``tunable`` says how the tuning controller may change it (live/restart/extend)."""
    extra = {"tunable": tunable} if tunable else None
    return Field(default, description=help, json_schema_extra=extra, **bounds)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IntelligentTrainingConfig(_Strict):
    """The tuning controller: when it analyses, who advises, and how changes are judged."""

    enabled: bool = _f(True, "Watch the run, diagnose it and propose changes (the rule engine: offline, "
                             "measured at 0.0 points cost and 0.1% overhead on a healthy run). [new]")
    mode: Literal["auto", "suggest", "off"] = _f(
        "auto", "auto applies changes; suggest waits for `trainpilot approve`; off only records the diagnosis. [new]")
    advisor: Literal["rules", "llm", "hybrid"] = _f(
        "rules", "Who proposes changes: the built-in rule engine, an LLM, or rules checked by an LLM. [new]")
    report_language: Literal["zh", "en"] = _f("en", "Language of the adjustment reports. [new]")
    analysis_interval: int = _f(2, "Analyse every N epochs (and again as soon as a change has been judged). [new]", ge=1, le=1000)
    min_epochs_before_analysis: int = _f(2, "First epoch at which a scheduled analysis may run. [new]", ge=1, le=1000)
    cooldown_epochs: int = _f(
        1, "Epochs to train with an applied change before the next analysis (which also waits until the change "
           "is judged). [new]", ge=0, le=1000)
    max_interventions: int = _f(5, "Applied changes allowed per run. [new]", ge=0, le=1000)
    evaluation_window: int = _f(2, "Epochs after a change before it is kept or rolled back. [new]", ge=1, le=100)
    fast_evaluation_window: int = _f(
        1, "Epochs before judging a change made to a clearly broken run (accuracy near chance, a non-finite loss, "
           "or an lr outside the usual range for the optimizer), where one epoch already shows the effect. [new]",
        ge=1, le=100)
    divergence_threshold: float = _f(
        2.0, "Emergency analysis when the train loss rises past this multiple of its best value. [new]", gt=1.0, le=100.0)
    lr_max_factor: float = _f(10.0, "Trust region: the most one change may multiply or divide the lr by. [new]", gt=1.0, le=1000.0)
    min_noise_margin: float = _f(
        0.005, "Smallest metric change treated as real when judging a change. [new]", ge=0.0, le=1.0)
    refinement_keep: Literal["new_best", "within_noise"] = _f(
        "new_best", "How a refinement is judged: a change to a run that is not broken (for overfitting, a plateau or "
                    "an oscillating metric, with no class-balance key in it). new_best keeps it only if the monitored "
                    "metric reaches the pre-change best; within_noise also keeps it a noise margin below. Changes to "
                    "broken runs and class-balance remedies are always judged within the noise margin. [new]")
    bounds: dict[str, list[float]] = _f(
        {}, "Per-key [low, high] overrides of the action schema's bounds, e.g. {\"learning_rate\": [1e-6, 0.1]}. [new]")
    imbalance_evaluation_window: int = _f(
        4, "Epochs before judging a class-imbalance remedy (sampler, class weights): minority recall needs longer "
           "than accuracy to move. A reverted imbalance remedy may be tried again after as many epochs with the "
           "minority class at recall 0. [new]", ge=1, le=100)
    stale_after_epochs: int = _f(
        2, "An LLM proposal that arrives more than N epochs after its request is dropped as stale. [new]", ge=0, le=100)
    llm: LLMSettings = Field(default_factory=LLMSettings, description="LLM backend settings. [new]")


class TrainConfig(_Strict):
    """Every training setting. Field order follows the seed config, then trainpilot's additions."""

    # --- the seed application's keys -------------------------------------------------------
    data_dir: str = _f("", "Dataset folder: train/ and val/ (optional test/) class folders, or flat class folders.")
    model_name: str = _f("mobilenetv3_small_100", "A timm model name, or a seed alias such as MobileNetV3 or ResNet50. (auto)")
    num_epochs: int = _f(40, "Training epochs (early stopping usually ends sooner). (auto)", ge=1, le=10000, tunable="extend")
    batch_size: int = _f(32, "Images per optimizer micro-batch.", ge=1, le=4096, tunable="restart")
    learning_rate: float = _f(2e-3, "Peak learning rate (after warmup).", gt=0.0, le=10.0, tunable="live")
    model_save_dir: str = _f("", "Extra folder that receives <model_filename>_best.pt and _last.pt; empty keeps them in the run only.")
    default_param_save_dir: str = _f("", "Extra folder that receives <model_filename>_config.json, the config actually used.")
    tensorboard_log_dir: str = _f("", "TensorBoard folder; empty means runs/<session_id>/tensorboard.")
    task_type: str = _f("classification", "Only image classification is supported.")
    optimizer: Literal[OPTIMIZERS] = _f("AdamW", "Optimizer (timm's create_optimizer_v2).", tunable="restart")
    use_pretrained: bool = _f(False, "Start from ImageNet weights (hub cache, pretrained_path or a packaged file); the "
                              "controller may switch a run from scratch onto them (a warm restart). (auto)",
                              tunable="restart")
    pretrained_path: str = _f("", "Local checkpoint to start from; its classifier head is replaced.")
    metrics: list[Literal[METRICS]] = _f(["accuracy", "macro_f1"], "Validation metrics shown in the console and TensorBoard.")
    use_tensorboard: bool = _f(True, "Write TensorBoard scalars, confusion matrices and hparams.")
    model_note: str = _f("", "Free text stored with the run and its checkpoints.")
    use_class_weights: bool = _f(False, "Weight the loss by class, computed from the training counts as the sampler draws them (so sampler and weights balance once). (auto)", tunable="live")
    weight_strategy: Literal["balanced", "inverse", "log_inverse", "custom", "none"] = _f(
        "balanced", "How class weights are computed; custom takes class_weights as given. (auto)", tunable="live")
    weight_decay: float = _f(0.05, "Weight decay (decoupled for AdamW).", ge=0.0, le=10.0, tunable="live")
    lr_scheduler: Literal[SCHEDULERS] = _f("CosineAnnealingLR", "Learning-rate schedule after warmup.", tunable="restart")
    use_augmentation: bool = _f(True, "Random resized crop, flips, brightness/contrast jitter (and rotation_degrees) on training images.", tunable="live")
    early_stopping: bool = _f(True, "Stop when the monitored validation metric stops improving.", tunable="live")
    early_stopping_patience: int = _f(
        10, "Epochs in which neither the monitored metric nor val_loss improved before stopping.",
        ge=1, le=1000, tunable="live")
    gradient_clipping: bool = _f(False, "Clip the global gradient norm.", tunable="live")
    gradient_clipping_value: float = _f(1.0, "Max global gradient norm.", gt=0.0, le=1e4, tunable="live")
    mixed_precision: bool = _f(True, "fp16 autocast on CUDA; on CPU bf16 only where measured faster.")
    dropout_rate: float = _f(0.0, "Dropout before the classifier head.", ge=0.0, le=0.95, tunable="live")
    activation_function: Literal[ACTIVATIONS] = _f("None", "Replace the model's activations; None keeps its own.")
    beta1: float = _f(0.9, "Adam-family beta1 (RMSprop: alpha).", ge=0.0, lt=1.0)
    beta2: float = _f(0.999, "Adam-family beta2.", ge=0.0, lt=1.0)
    momentum: float = _f(0.9, "SGD/RMSprop momentum.", ge=0.0, lt=1.0)
    nesterov: bool = _f(False, "Nesterov momentum for SGD.")
    warmup_enabled: bool = _f(True, "Ramp the lr up per optimizer step; the first step is never at lr 0.")
    warmup_steps: int = _f(0, "Warmup length in optimizer steps; 0 uses warmup_ratio.", ge=0, le=10**7)
    warmup_ratio: float = _f(0.05, "Warmup length as a fraction of all optimizer steps.", ge=0.0, le=0.5)
    warmup_method: Literal["linear", "cosine"] = _f("linear", "Warmup curve.")
    min_lr_enabled: bool = _f(True, "Never let any scheduler go below min_lr.")
    min_lr: float = _f(1e-6, "The lr floor.", ge=0.0, le=1.0)
    label_smoothing_enabled: bool = _f(True, "Label smoothing in the cross-entropy.", tunable="live")
    label_smoothing: float = _f(0.1, "Label smoothing amount.", ge=0.0, le=0.5, tunable="live")
    focal_gamma: float = _f(
        0.0, "Focal loss: each term -t log(p) of the cross-entropy is scaled by (1 - p)^focal_gamma, so the images "
             "the model already gets right count less and the ones it misses more. 0: plain cross-entropy. Class "
             "weights, label smoothing and mixup's soft targets apply either way. [new]", ge=0.0, le=5.0)
    model_ema: bool = _f(True, "Keep an EMA of the weights; the better of EMA and raw becomes best.pt.")
    model_ema_decay: float = _f(0.998, "EMA decay per optimizer step (with timm's warmup).", ge=0.0, lt=1.0, tunable="live")
    gradient_accumulation_enabled: bool = _f(False, "Accumulate gradients over several micro-batches.", tunable="live")
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step.", ge=1, le=1024, tunable="live")
    advanced_augmentation_enabled: bool = _f(False, "Mixup/CutMix (timm.data.Mixup) with soft-target loss.", tunable="live")
    cutmix_prob: float = _f(0.5, "Probability that a mixed batch uses CutMix instead of Mixup.", ge=0.0, le=1.0, tunable="live")
    mixup_alpha: float = _f(0.2, "Mixup/CutMix Beta(alpha, alpha).", gt=0.0, le=10.0, tunable="live")
    loss_scaling_enabled: bool = _f(True, "Scale the loss under mixed precision (GradScaler); skips non-finite steps.")
    loss_scale: Literal["dynamic", "static"] = _f("dynamic", "dynamic grows/backs off the scale; static keeps static_loss_scale.")
    static_loss_scale: float = _f(128.0, "The fixed scale when loss_scale is static.", gt=0.0, le=2.0**24)
    class_weights: dict[str, float] | None = _f(
        None, "Per-class loss weights; filled in from the data when use_class_weights is on (or given, with custom).",
        tunable="live")
    model_filename: str = _f("", "File stem for model_save_dir/default_param_save_dir copies; default <model_name>_<timestamp>.")
    timestamp: str = _f("", "Creation time stamp (YYYYmmdd-HHMMSS) used in the default model_filename; empty means now.")

    # --- trainpilot's additions -------------------------------------------------------------
    recipe: Literal["auto", "off"] = _f(
        "auto", "auto chooses the keys marked (auto) that you did not set from what the data is (class counts, image "
                "sizes, colour, size of the set) and prints each choice with its reason; off uses the defaults as "
                "listed. A key you set, and every key of a seed config, always wins. [new]")
    image_size: int = _f(160, "Input size in pixels: the side of the square input, or its long side when "
                              "input_aspect is not 1. (auto) [new]", ge=16, le=1024)
    input_aspect: float = _f(
        1.0, "Width / height of the input: 1 is an image_size square; 2 is image_size wide and half as high, so "
             "wide parts fill the input instead of padding at the same cost per pixel; below 1 for tall parts. The "
             "short side is rounded to a multiple of 8. (auto) [new]", ge=0.25, le=4.0)
    resize_mode: Literal["squash", "letterbox"] = _f(
        "squash", "How an image becomes the input: squash resizes it to the input's shape; letterbox keeps "
                  "its aspect ratio and pads the short side with the image's mean colour, so a long 600x200 "
                  "part is not squeezed 3:1. (auto) [new]")
    rotate_to_fit: bool = _f(
        False, "Turn an image by 90 degrees when its orientation differs from the input's (a tall part for a "
               "wide input), so it fills the input instead of a third of it. Only for a non-square input; "
               "orientation must not carry the class (augmentation already flips both ways). (auto) [new]")
    sampler: Literal["shuffle", "sqrt", "balanced"] = _f(
        "shuffle", "Order of training images: shuffle sees each image once per epoch; sqrt draws classes in "
                   "proportion to the square root of their counts, balanced draws every class equally often (both "
                   "with replacement, same epoch length). (auto) [new]", tunable="live")
    train_cache_scale: float = _f(
        1.25, "Train images are cached at image_size x this, so random crops are cut from more pixels than they are "
              "resized to instead of being upsampled. [new]", ge=1.0, le=2.0)
    crop_scale_min: float = _f(
        0.6, "Smallest area fraction kept by the random resized crop (use_augmentation); small crops can cut a "
             "defect out of the image. [new]", gt=0.0, le=1.0)
    color_jitter: float = _f(
        0.2, "Brightness and contrast jitter strength (use_augmentation); factors are drawn from [1-x, 1+x]. [new]",
        ge=0.0, le=0.9)
    rotation_degrees: float = _f(
        0.0, "Largest angle of a random rotation of the training crops, either way (use_augmentation); surface defects "
             "have no canonical orientation. 0: none. [new]", ge=0.0, le=180.0)
    time_budget_minutes: float = _f(
        0.0, "Wall-clock budget for training in minutes (0: none). After each epoch, num_epochs (at most the planned) "
             "and the lr schedule are re-planned to what fits at the last 3 epochs' times. [new]", ge=0.0, le=1e6)
    val_split: float = _f(0.2, "Validation fraction for flat class folders (seeded, stratified). [new]", gt=0.0, lt=0.9)
    seed: int = _f(42, "Random seed for splits, init, augmentation and order. [new]", ge=0, le=2**31 - 1)
    num_workers: int = _f(0, "Decoding processes when images are streamed from disk (not cached). [new]", ge=0, le=64)
    cache_images: Literal["auto", "always", "never"] = _f(
        "auto", "Decode and resize once into RAM; auto does so when it fits in cache_max_gb. [new]")
    cache_max_gb: float = _f(4.0, "RAM budget for the image cache. [new]", gt=0.0, le=1024.0)
    device: str = _f("auto", "auto, cpu, cuda, cuda:N or mps. [new]")
    channels_last: bool = _f(True, "channels_last memory format (faster convolutions on CPU and GPU). [new]")
    compile: bool = _f(False, "torch.compile the model (slow start, faster steps on long runs). [new]")
    monitor: Literal["val_accuracy", "val_macro_f1", "val_loss"] = _f(
        "val_accuracy", "Validation metric for best.pt, early stopping and the tuning controller. (auto) [new]")
    logit_adjustment: Literal["auto", "off"] = _f(
        "auto", "After training, subtract tau x log(share) from best.pt's logits (share: each class's part of the loss, "
                "sampler x class weights; tau in 0..2 chosen on validation for the monitored metric, macro-F1 for val_loss, "
                "0 unless it beats the raw model). Evaluation, predict and ONNX include it; off keeps the raw argmax. While "
                "on, each epoch is also scored at tau 1 (prior_corrected), and the controller judges changes on the better "
                "of that and the raw score. [new]")
    test_time_augmentation: Literal["auto", "flips", "off"] = _f(
        "auto", "Average best.pt's class probabilities over each image and its three flips (4 forward passes). auto: "
                "when, on validation, they score the monitored metric at least as well as one view and lower the "
                "log-loss; flips: always. Evaluate, predict and ONNX include it. [new]")
    suspect_labels: bool = _f(
        True, "After training, score the training images with best.pt and list those whose label it confidently "
              "contradicts (confident learning: per-class thresholds) in reports/suspect_labels.csv, most doubtful "
              "first, for a person to check. Nothing is relabelled. [new]")
    drop_suspect_labels: bool = _f(
        False, "Leave out of training the images whose label the model confidently contradicts (the rule of "
               "suspect_labels), scored with the model as it is after 3 epochs and every 3 epochs after; the epoch "
               "keeps its length and no class is emptied. The tuning controller turns it on for noisy labels. "
               "Relabelling the images is still the fix. [new]", tunable="live")
    lr_step_size: int = _f(0, "StepLR step (epochs); also spaces MultiStepLR milestones; 0 means num_epochs // 3. [new]", ge=0, le=10000)
    lr_gamma: float = _f(0.1, "Decay factor for StepLR/MultiStepLR/ReduceLROnPlateau; ExponentialLR reaches min_lr-ish at the end when 0. [new]", ge=0.0, lt=1.0)
    lr_patience: int = _f(3, "ReduceLROnPlateau patience in epochs. [new]", ge=0, le=1000)
    intelligent_training: IntelligentTrainingConfig = Field(
        default_factory=IntelligentTrainingConfig, description="The tuning controller. [new]")

    @field_validator("task_type")
    @classmethod
    def _only_classification(cls, v: str) -> str:
        if v != "classification":
            raise ValueError(f"task_type {v!r} is not supported; trainpilot trains image classifiers: use 'classification'")
        return v

    @field_validator("optimizer", "lr_scheduler", "activation_function", mode="before")
    @classmethod
    def _case_insensitive(cls, v: Any, info: Any) -> Any:
        choices = {"optimizer": OPTIMIZERS, "lr_scheduler": SCHEDULERS, "activation_function": ACTIVATIONS}[info.field_name]
        if isinstance(v, str):
            for c in choices:
                if c.lower() == v.strip().lower():
                    return c
            if v.strip().lower() in ("none", "null", "") and "None" in choices:
                return "None"
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"device {v!r} is not one of auto, cpu, cuda, cuda:N, mps")
        return v

    # -- helpers ------------------------------------------------------------------------------
    @property
    def accumulation_steps(self) -> int:
        """Micro-batches per optimizer step actually used (1 when accumulation is off)."""
        return self.gradient_accumulation_steps if self.gradient_accumulation_enabled else 1

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------------
# loading, overrides and one-line errors

def all_keys(model: type[BaseModel] = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, nested sections included."""
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += all_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _suggest(key: str) -> str:
    candidates = all_keys()
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:  # also try the last part alone, e.g. "mode" -> intelligent_training.mode
        tail = {k.rsplit(".", 1)[-1]: k for k in candidates}
        hit = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tail), n=1, cutoff=0.75)
        close = [tail[hit[0]]] if hit else []
    return f"; did you mean '{close[0]}'?" if close else "; see `trainpilot config` for every key"


def _check_unknown(data: dict[str, Any], model: type[BaseModel], prefix: str = "") -> None:
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            raise ConfigError(f"unknown config key '{prefix}{key}'{_suggest(prefix + key)}")
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(value, dict):
            _check_unknown(value, ann, f"{prefix}{key}.")


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "config"
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"config key '{key}': {msg}{shown}{more}"


def build_config(data: dict[str, Any]) -> TrainConfig:
    """Validate a plain dict into a TrainConfig, raising ConfigError with a one-line message."""
    _check_unknown(data, TrainConfig)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_one_line(err)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict (no validation yet)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist")
    text = p.read_text(encoding="utf-8-sig")
    try:
        data = yaml.safe_load(text) if p.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"config file '{p}' is not valid {p.suffix.lstrip('.').upper() or 'JSON'}: "
                          f"{str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping of keys to values")
    return data


def parse_value(text: str) -> Any:
    """Turn a --set value into a typed value: JSON first, then YAML (true, 1e-4, [a, b]), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if value is None and text.strip() not in ("null", "~") else value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides; dotted keys reach nested sections."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set '{item}' must look like key=value, e.g. --set num_epochs=20")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in all_keys() and not any(k.startswith(key + ".") for k in all_keys()):
            raise ConfigError(f"unknown config key '{key}' in --set{_suggest(key)}")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parse_value(raw)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                **fields: Any) -> TrainConfig:
    """Config file (optional) + keyword fields + --set overrides -> validated TrainConfig."""
    data = read_config_file(path) if path else {}
    data.update({k: v for k, v in fields.items() if v is not None})
    return build_config(apply_overrides(data, overrides or []))


# --------------------------------------------------------------------------------------------
# paths

_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)|\\")


def is_foreign_windows_path(value: str) -> bool:
    """True for 'E:\\data' or '\\\\server\\share' when running on a POSIX system."""
    return os.name != "nt" and bool(_WINDOWS_PATH.search(value))


def input_path(cfg: TrainConfig, key: str) -> Path:
    """An existing input path from the config, or a ConfigError naming the key and the fix."""
    value = getattr(cfg, key)
    if not value:
        raise ConfigError(f"config key '{key}' is empty; set it, e.g. --set {key}=path/to/folder")
    if is_foreign_windows_path(value):
        raise ConfigError(f"config key '{key}' is a Windows path ({value!r}) and this is "
                          f"{os.uname().sysname}; give a local path, e.g. --set {key}=/path/on/this/machine")
    path = Path(value).expanduser()
    if not path.exists():
        raise ConfigError(f"config key '{key}': '{path}' does not exist")
    return path


def output_dir(cfg: TrainConfig, key: str) -> tuple[Path | None, str | None]:
    """An optional output folder: (path, None), or (None, notice) when it cannot be used here.

    A Windows path from a config written on Windows is not turned into a folder with backslashes
    in its name: it is skipped with a one-line notice naming the key, and the run directory
    (which always holds everything) is used instead.
    """
    value = getattr(cfg, key)
    if not value:
        return None, None
    if is_foreign_windows_path(value):
        return None, (f"config key '{key}' is a Windows path ({value!r}); it cannot be used on "
                      f"{os.uname().sysname}, so the run directory is used instead (set --set {key}=DIR to change)")
    return Path(value).expanduser(), None
