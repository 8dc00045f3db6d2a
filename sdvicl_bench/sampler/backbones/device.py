"""Where a model runs: `model.device` and `model.dtype` resolved for this machine, and
`place_model`, which moves a built model there with the speed settings."""

from __future__ import annotations

import torch

from sdvicl_bench.errors import ModelError
from sdvicl_bench.sampler.denoiser import Denoiser


def resolve_device(spec: str) -> torch.device:
    """`auto` -> cuda if available else cpu; else `cpu`, `cuda[:i]` or `mps` if this machine has it.

    Anything else (a type torch does not know, cuda without CUDA, an index past the GPU count,
    mps without MPS) raises a one-line ModelError naming the device and the valid choices.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        device = None
    problem = _device_problem(device)
    if problem:
        raise ModelError(
            f"model.device={spec}: {problem}. Fix: model.device=auto or one of: "
            f"{', '.join(device_choices()[1:])}."
        )
    return device


def device_choices() -> list[str]:
    """The `model.device` values this machine can run: auto, cpu, cuda, cuda:i, mps."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def _device_problem(device: torch.device | None) -> str | None:
    """Why torch cannot run the model on `device` here, or None when it can."""
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        return "not a device type sdvicl-bench can run on (cpu, cuda, mps)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"no CUDA device is visible (torch {torch.__version__})"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device{'s' if count != 1 else ''}"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS (Apple GPU) is not available here"
    return None


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """`auto` -> bfloat16 on CUDA (fp16 can overflow in SD's VAE), float32 on CPU."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[spec]


def dtype_name(dtype: torch.dtype) -> str:
    """`torch.bfloat16` -> "bfloat16"."""
    return str(dtype).removeprefix("torch.")


def place_model(
    model: Denoiser,
    device: torch.device,
    dtype: torch.dtype,
    *,
    channels_last: bool = False,
    compile: bool = False,
) -> Denoiser:
    """Move a model to its device and dtype, in eval mode, with the speed settings
    (`Denoiser.place`); on CUDA, cuDNN picks its fastest convolutions once per shape.

    channels_last: NHWC convolutions (faster with bf16 on recent GPUs; same numbers up to
    kernel rounding). compile: `torch.compile(network, dynamic=False)`.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels once
    return model.place(device, dtype, channels_last=channels_last, compile=compile)
