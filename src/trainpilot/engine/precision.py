"""Mixed precision: fp16 + GradScaler on CUDA; on CPU bf16 only where it is measured faster.

The CPU decision is made by timing a few forward+backward steps of a copy of the actual model in
fp32 and in bf16 autocast; it is cached per (CPU, torch version, model, input shape), so the probe
runs once per machine and setup.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainpilot.config import TrainConfig

CACHE_FILE = Path.home() / ".cache" / "trainpilot" / "precision.json"
MIN_SPEEDUP = 1.1


@dataclass
class Precision:
    autocast_dtype: torch.dtype | None  # None: full fp32
    scaler: torch.amp.GradScaler | None
    static_scale: float | None
    notice: str | None

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_steps(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None, n: int = 3) -> float:
    """Seconds per forward + backward of ``model`` on ``x`` on the CPU, in fp32 or under ``dtype`` autocast:
    the fastest of ``n`` steps after one that builds the kernels for this shape (a busy machine only slows
    steps down, so the minimum is the least disturbed)."""
    times = []
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for _ in range(n + 1):
            start = time.perf_counter()
            model(x).float().logsumexp(1).sum().backward()
            times.append(time.perf_counter() - start)
    return min(times[1:])


def measure_bf16_speedup(model: torch.nn.Module, x: torch.Tensor) -> float:
    """fp32 time / bf16 time for forward+backward of a copy of ``model`` (its state is untouched)."""
    probe = copy.deepcopy(model).train()
    rng = torch.get_rng_state()
    try:
        fp32 = time_steps(probe, x, None)
        bf16 = time_steps(probe, x, torch.bfloat16)
    finally:
        torch.set_rng_state(rng)
    return fp32 / bf16


def _cached_speedup(key: str, measure) -> float:
    try:
        cache = json.loads(CACHE_FILE.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache[key] = round(measure(), 3)
        try:
            CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
            CACHE_FILE.write_text(json.dumps(cache, indent=1))
        except OSError:
            pass  # a read-only home only costs a re-measure next time
    return cache[key]


def _scaler(cfg: TrainConfig, device: torch.device) -> tuple[torch.amp.GradScaler | None, float | None]:
    if not cfg.loss_scaling_enabled:
        return None, None
    if cfg.loss_scale == "static":
        return torch.amp.GradScaler(device.type, init_scale=cfg.static_loss_scale), cfg.static_loss_scale
    return torch.amp.GradScaler(device.type), None


def choose_precision(cfg: TrainConfig, device: torch.device, model: torch.nn.Module, sample: torch.Tensor) -> Precision:
    """Pick autocast dtype and loss scaler for ``cfg`` on ``device``.

    With loss scaling on, a GradScaler is used in every mode: besides guarding fp16 gradients it
    skips optimizer steps whose gradients are non-finite, which protects the weights from one bad
    batch.
    """
    if not cfg.mixed_precision:
        return Precision(None, None, None, None)
    scaler, static = _scaler(cfg, device)
    if device.type == "cuda":
        return Precision(torch.float16, scaler, static, None)
    if device.type != "cpu":
        return Precision(None, scaler, static, f"mixed_precision: not supported on {device.type}; running fp32")
    key = hashlib.sha1(json.dumps([_cpu_name(), torch.__version__, type(model).__name__,
                                   sum(p.numel() for p in model.parameters()), list(sample.shape)]).encode()).hexdigest()
    speedup = _cached_speedup(key, lambda: measure_bf16_speedup(model, sample))
    if speedup >= MIN_SPEEDUP:
        return Precision(torch.bfloat16, scaler, static, f"mixed_precision: bf16 autocast ({speedup:.2f}x fp32 speed on this CPU)")
    return Precision(None, scaler, static,
                     f"mixed_precision: bf16 autocast measured {speedup:.2f}x fp32 speed on this CPU, so training runs in fp32")
