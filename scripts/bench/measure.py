"""Measuring: which variants, their models and episodes, latency, batched throughput, peak
memory, image-passes per step, one-step agreement, the attention memory probe, and `run`,
which does all of it for the parsed command line and returns the record
(scripts/bench_sampler.py's docstring says what each measurement is)."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdvicl_bench.config import AttentionConfig, SamplerConfig
from sdvicl_bench.sampler import fused_attention
from sdvicl_bench.sampler.attention import resolve_kernel, vicl_attention
from sdvicl_bench.sampler.backbones.base import DiffusionModel
from sdvicl_bench.sampler.backbones.device import place_model
from sdvicl_bench.sampler.backbones.sd15 import build_sd15_random, build_tiny
from sdvicl_bench.sampler.naive import NaiveSampler, first_step_eps
from sdvicl_bench.sampler.pipeline import Episode, Sampler

from .report import fmt, fmt_bytes, log, machine_info, save_partial
from .row import Row

# The command line that runs the memory probe, one subprocess per mode.
CLI = Path(__file__).resolve().parents[1] / "bench_sampler.py"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}
WARMUP_STEPS = 2
# The memory check's layer: SD1.5's 64x64 self-attention at n = 5.
PROBE_SHAPE = dict(batch=1, heads=8, nq=4096, nk=4096, prompts=5, dim=40)


# ----------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One benchmark row family: which sampler, in which dtype, compiled or not, which
    attention kernel for D_mod ('torch': `vicl_attention`; 'triton': the fused kernel)."""

    label: str
    kind: str  # "naive" | "optimized"
    dtype: torch.dtype
    compiled: bool = False
    channels_last: bool = False
    kernel: str = "torch"


def plan_variants(names: str, dtype: torch.dtype) -> list[Variant]:
    """Variants from a comma list; duplicates (e.g. 'bf16' when --dtype is bf16) collapse."""
    out: dict[str, Variant] = {}
    for name in (s.strip() for s in names.split(",") if s.strip()):
        if name == "naive":
            v = Variant(f"naive-{SHORT[dtype]}", "naive", dtype)
        elif name == "optimized":
            v = Variant(f"optimized-{SHORT[dtype]}", "optimized", dtype)
        elif name in ("bf16", "fp32"):
            v = Variant(f"optimized-{name}", "optimized", DTYPES[_long(name)])
        elif name == "channels-last":
            v = Variant(f"nhwc-{SHORT[dtype]}", "optimized", dtype, channels_last=True)
        elif name == "fused":
            v = Variant(f"fused-{SHORT[dtype]}", "optimized", dtype, kernel="triton")
        elif name in ("compile", "compile-fused"):
            kernel = "triton" if name == "compile-fused" else "torch"
            v = Variant(
                f"{name}-bf16",
                "optimized",
                torch.bfloat16,
                compiled=True,
                channels_last=True,
                kernel=kernel,
            )
        else:
            raise SystemExit(
                f"--variants: unknown variant '{name}'. Use naive, optimized, bf16, fp32, "
                "channels-last, fused, compile, compile-fused."
            )
        out.setdefault(v.label, v)
    return list(out.values())


def _long(short: str) -> str:
    return {"bf16": "bfloat16", "fp32": "float32"}[short]


class ModelPool:
    """Builds the random model once (float32, CPU) and hands out per-variant copies."""

    def __init__(self, name: str, device: torch.device, seed: int) -> None:
        build = build_tiny if name == "tiny" else build_sd15_random
        t0 = time.perf_counter()
        self.base = build(seed=seed)
        self.build_s = time.perf_counter() - t0
        self.device = device
        self._cache: dict[tuple[torch.dtype, bool, bool], DiffusionModel] = {}

    def get(self, variant: Variant) -> DiffusionModel:
        key = (variant.dtype, variant.compiled, variant.channels_last)
        if key not in self._cache:
            self._cache[key] = place_model(
                copy.deepcopy(self.base),
                self.device,
                variant.dtype,
                channels_last=variant.channels_last,
                compile=variant.compiled,
            )
        return self._cache[key]

    def release(self, variant: Variant) -> None:
        self._cache.pop((variant.dtype, variant.compiled, variant.channels_last), None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def make_sampler(variant: Variant, model: DiffusionModel, cfg: SamplerConfig) -> Sampler:
    """The variant's sampler; `cfg`'s attention kernel is set to the variant's."""
    attention = dataclasses.replace(cfg.attention, kernel=variant.kernel)
    cfg = dataclasses.replace(cfg, attention=attention)
    return (NaiveSampler if variant.kind == "naive" else Sampler)(model, cfg)


# ----------------------------------------------------------------------------- inputs


def picture(seed: int, size: int, binary: bool = False) -> Image.Image:
    """A smooth random photo, or a white square on black (a mask picture)."""
    rng = np.random.default_rng(seed)
    if binary:
        arr = np.zeros((size, size, 3), np.uint8)
        side = size // 3
        x, y = rng.integers(0, size - side, 2)
        arr[y : y + side, x : x + side] = 255
        return Image.fromarray(arr)
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)


def make_episodes(n: int, count: int, size: int, seed: int) -> list[Episode]:
    """`count` distinct synthetic episodes with n prompt pairs each."""
    out = []
    for e in range(count):
        base = 1000 * (e + 1)
        prompts = [picture(base + j, size) for j in range(n)]
        targets = [picture(base + 100 + j, size, binary=True) for j in range(n)]
        out.append(Episode(prompts, targets, picture(base + 500, size), seed=seed))
    return out


# ----------------------------------------------------------------------------- measuring


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(field_name: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), None where unreadable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc), so the RSS baseline is the live set."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class PeakMemory:
    """Peak memory of a block: CUDA allocator peak, or the rise of the CPU peak RSS."""

    device: torch.device
    bytes: int | None = None
    how: str = "n/a"

    @contextmanager
    def measure(self) -> Iterator[PeakMemory]:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield self
            synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
            self.how = "cuda max_memory_allocated"
            return
        _trim_heap()
        base = _status_kib("VmRSS")
        reset = _reset_peak_rss()
        yield self
        peak = _status_kib("VmHWM")
        if base is not None and peak is not None and reset:
            self.bytes, self.how = max(0, peak - base) * 1024, "cpu peak RSS rise"


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Wall seconds of fn() with device synchronisation on both ends, and its result."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - t0, out


def all_finite(results) -> bool:
    return all(bool(torch.isfinite(r.latents).all()) for r in results)


def expected_passes(kind: str, n: int, swap: bool = True) -> int:
    """METHOD.md 9: 2n+3 (fused) and 6n+5 (naive); 2n+2 and 4n+3 without swap guidance."""
    if kind == "naive":
        return 6 * n + 5 if swap else 4 * n + 3
    return 2 * n + 3 if swap else 2 * n + 2


def sampler_config(args: argparse.Namespace, steps: int, batch: int = 1) -> SamplerConfig:
    return SamplerConfig(
        steps=steps,
        resolution=args.resolution,
        batch_episodes=batch,
        attention=AttentionConfig(chunk_size=args.chunk_size),
    )


def measure(
    variant: Variant,
    model: DiffusionModel,
    n: int,
    args: argparse.Namespace,
    *,
    steps: int,
    repeats: int,
    batched: bool,
) -> tuple[Row, torch.Tensor]:
    """Latency (+ batched throughput) of one variant at n prompts; also D's final latent."""
    dev = model.device
    row = Row(variant.label, variant.kind, SHORT[variant.dtype], n, steps, args.resolution)
    row.expected_passes_per_step = expected_passes(variant.kind, n)
    ep = make_episodes(n, 1, args.resolution, args.seed)[0]

    # Warm-up (allocator, kernels, compilation) with the same shapes and a few steps.
    warm = make_sampler(variant, model, sampler_config(args, WARMUP_STEPS))
    row.warmup_s, _ = timed(lambda: warm.run([ep]), dev)

    sampler = make_sampler(variant, model, sampler_config(args, steps))
    mem = PeakMemory(dev)
    with mem.measure():
        for _ in range(repeats):
            seconds, results = timed(lambda: sampler.run([ep], return_latents=True), dev)
            row.latency_runs.append(seconds)
    row.latency_s = statistics.median(row.latency_runs)
    row.ms_per_step = 1000 * row.latency_s / steps
    row.peak_mem_latency, row.mem_how = mem.bytes, mem.how
    row.passes_per_step = sampler.image_passes / (repeats * steps)
    row.unet_calls_per_step = sampler.unet_calls / (repeats * steps)
    row.finite = all_finite(results)
    latent = results[0].latents

    if batched and args.batch > 1:
        eps = make_episodes(n, args.batch, args.resolution, args.seed)
        warm = make_sampler(variant, model, sampler_config(args, WARMUP_STEPS, args.batch))
        seconds, _ = timed(lambda: warm.run(eps), dev)
        row.warmup_s += seconds
        sampler = make_sampler(variant, model, sampler_config(args, steps, args.batch))
        mem = PeakMemory(dev)
        with mem.measure():
            seconds, results = timed(lambda: sampler.run(eps, return_latents=True), dev)
        row.batch = args.batch
        row.batch_s_per_episode = seconds / args.batch
        row.peak_mem_batch = mem.bytes
        row.finite = row.finite and all_finite(results)
    elif variant.kind == "naive":
        row.note = "unbatched"
    return row, latent


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def one_step_agreement(
    pool: ModelPool, first: Variant, second: Variant, n: int, args: argparse.Namespace
) -> dict:
    """Relative error of step 0's eps (mod, def, C) of `first` against `second`."""
    ep = make_episodes(n, 1, args.resolution, args.seed)[0]
    cfg = sampler_config(args, args.steps)
    out_a = first_step_eps(make_sampler(first, pool.get(first), cfg), ep)
    out_b = first_step_eps(make_sampler(second, pool.get(second), cfg), ep)
    errs = {k: rel_err(out_a[k], out_b[k]) for k in out_a if out_a[k] is not None}
    tol = max(TOLERANCE[first.dtype], TOLERANCE[second.dtype])
    return {
        "pair": f"{first.label} vs {second.label}",
        "n": n,
        **{f"rel_{k}": v for k, v in errs.items()},
        "max_rel": max(errs.values()),
        "tolerance": tol,
        "ok": max(errs.values()) < tol,
    }


# ----------------------------------------------------------------------------- memory check


def probe_attention(args: argparse.Namespace) -> dict:
    """Subprocess body: peak memory of one vicl_attention call (one 64x64 layer at n = 5)."""
    s, dev = PROBE_SHAPE, torch.device(args.device)
    dtype = DTYPES[args.dtype]
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(s["batch"], s["heads"], s["nq"], s["dim"], generator=gen).to(dev, dtype)
    nk = s["prompts"] * s["nk"]
    k = torch.randn(s["batch"], s["heads"], nk, s["dim"], generator=gen).to(dev, dtype)
    v = torch.randn(s["batch"], s["heads"], nk, s["dim"], generator=gen).to(dev, dtype)
    mode = args.probe_attention
    chunk = args.chunk_size if mode == "blocked" else None
    if mode == "fused":

        def attend():
            return fused_attention.fused_vicl_attention(q, k, v, num_prompts=s["prompts"])
    else:

        def attend():
            return vicl_attention(q, k, v, num_prompts=s["prompts"], chunk_size=chunk)

    reference = vicl_attention(q, k, v, num_prompts=s["prompts"], chunk_size=args.chunk_size)
    attend()  # warm-up: kernel compilation and allocator
    synchronize(dev)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    base = int(torch.cuda.memory_allocated(dev)) if dev.type == "cuda" else 0
    mem = PeakMemory(dev)
    with mem.measure():
        seconds, out = timed(attend, dev)
    peak = mem.bytes - base if mem.bytes is not None and dev.type == "cuda" else mem.bytes
    rows = chunk or s["nq"]
    return {
        "mode": mode,
        "rel_err_vs_blocked": rel_err(out, reference),
        "fell_back": list(fused_attention.FALLBACKS),
        "chunk_size": chunk,
        "dtype": args.dtype,
        "device": args.device,
        "shape": f"B={s['batch']} H={s['heads']} Nq={s['nq']} n*Nk={nk} d={s['dim']}",
        "peak_bytes": peak,
        "how": mem.how,
        "theory_bytes": 0 if mode == "fused" else rows * nk * s["heads"] * 4,
        "theory": "no scores stored"
        if mode == "fused"
        else f"{rows} x {nk} x {s['heads']} heads x 4 B (float32 scores)",
        "seconds": seconds,
        "finite": bool(torch.isfinite(out).all()),
    }


def memory_check(args: argparse.Namespace) -> list[dict]:
    """Run the attention probe in a fresh subprocess for each mode."""
    out = []
    modes = ["blocked", "materialised"]
    if fused_attention.can_run(torch.device(args.device)):
        modes.append("fused")
    for mode in modes:
        cmd = [sys.executable, str(CLI), "--probe-attention", mode]
        cmd += [
            "--device",
            args.device,
            "--dtype",
            args.dtype,
            "--chunk-size",
            str(args.chunk_size),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            out.append({"mode": mode, "error": tail[0][:300]})
        log(f"[memory-check] {mode}: {fmt_bytes(out[-1].get('peak_bytes'))}")
    return out


# ----------------------------------------------------------------------------- speedups


def speedups(rows: list[Row], extra: dict[tuple[str, int, int], float]) -> list[dict]:
    """naive vs optimized at the same dtype and the same steps (per-step latency ratio)."""
    out = []
    for naive in (r for r in rows if r.kind == "naive" and r.latency_s):
        label = naive.variant.replace("naive", "optimized")
        opt = next((r for r in rows if r.variant == label and r.n == naive.n), None)
        if opt is None:
            continue
        opt_latency = (
            opt.latency_s if opt.steps == naive.steps else extra.get((label, naive.n, naive.steps))
        )
        if not opt_latency:
            continue
        out.append(
            {
                "n": naive.n,
                "dtype": naive.dtype,
                "steps": naive.steps,
                "naive_s": naive.latency_s,
                "optimized_s": opt_latency,
                "speedup": naive.latency_s / opt_latency,
                "passes_ratio": expected_passes("naive", naive.n)
                / expected_passes("optimized", naive.n),
            }
        )
    return out


# ----------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"--device cuda: torch {torch.__version__} sees no CUDA device. Fix: run it where a "
            "CUDA build of torch sees a GPU (PY=<that python> for make bench-gpu), or --device cpu",
            file=sys.stderr,
        )
        raise SystemExit(2)
    base_dtype = DTYPES[args.dtype]
    variants = plan_variants(args.variants, base_dtype)
    notes: list[str] = []
    if any(v.kind == "naive" for v in variants):
        notes.append(
            "naive runs one episode at a time ('unbatched'): its throughput is its latency"
        )
    log(f"building {args.model} ...")
    pool = ModelPool(args.model, device, args.seed)
    log(f"built in {pool.build_s:.1f} s; variants: {', '.join(v.label for v in variants)}")

    rows: list[Row] = []
    latents: dict[tuple[str, int], torch.Tensor] = {}
    extra: dict[tuple[str, int, int], float] = {}
    skipped: set[str] = set()
    if fused_attention.interpreting() and any(v.kernel == "triton" for v in variants):
        notes.append(
            "fused rows ran in Triton's CPU interpreter (TRITON_INTERPRET=1): their times "
            "say nothing about the kernel's speed, only that it computes the same numbers"
        )
    for variant in variants:
        if variant.kernel == "triton":
            try:
                resolve_kernel("triton", device)
            except Exception as err:  # ConfigError: no triton, or no GPU
                notes.append(f"{variant.label} skipped: {err}")
                log(notes[-1])
                skipped.add(variant.label)
                continue
        ns = args.compile_prompts if variant.compiled else args.prompts
        for n in ns:
            naive = variant.kind == "naive"
            steps = args.naive_steps if naive else args.steps
            repeats = args.naive_repeats if naive else args.repeats
            try:
                model = pool.get(variant)
                row, latent = measure(
                    variant, model, n, args, steps=steps, repeats=repeats, batched=not naive
                )
            except Exception as err:  # compiling or the fused kernel may fail; others raise
                if not (variant.compiled or variant.kernel == "triton"):
                    raise
                notes.append(f"{variant.label} skipped: {type(err).__name__}: {str(err)[:200]}")
                log(notes[-1])
                break
            rows.append(row)
            latents[(variant.label, n)] = latent
            save_partial(args, rows, notes)
            log(
                f"[{row.variant} n={n}] latency {row.latency_s:.3f} s ({row.ms_per_step:.1f} "
                f"ms/step, {steps} steps), batched {fmt(row.batch_s_per_episode)} s/ep, "
                f"passes/step {row.passes_per_step:.0f}, peak {fmt_bytes(row.peak_mem_latency)}"
            )
        pool.release(variant)
        if variant.kernel == "triton" and fused_attention.FALLBACKS:
            for row in (r for r in rows if r.variant == variant.label):
                row.note = "fused kernel FELL BACK to torch"
            notes.append(
                f"{variant.label}: the fused kernel could not run and the torch kernel ran "
                f"instead: {'; '.join(fused_attention.FALLBACKS)}"
            )
            fused_attention.FALLBACKS.clear()

    # Equal-steps reference for the speedup row when naive ran fewer steps.
    if args.naive_steps != args.steps:
        for variant in (v for v in variants if v.kind == "naive"):
            label = variant.label.replace("naive", "optimized")
            opt = dataclasses.replace(variant, label=label, kind="optimized")
            for n in args.prompts:
                row, _ = measure(
                    opt,
                    pool.get(opt),
                    n,
                    args,
                    steps=args.naive_steps,
                    repeats=args.repeats,
                    batched=False,
                )
                extra[(opt.label, n, args.naive_steps)] = row.latency_s
            pool.release(opt)
        notes.append(
            f"naive ran {args.naive_steps} steps: the speedup row compares it with the "
            f"optimized sampler re-timed at {args.naive_steps} steps"
        )

    agreement = []
    for first, second in agreement_pairs([v for v in variants if v.label not in skipped]):
        for n in args.prompts:
            if second.compiled and n not in args.compile_prompts:
                continue
            try:
                entry = one_step_agreement(pool, first, second, n, args)
            except Exception as err:  # a failed compile or kernel is a note, not a crash
                if not (second.compiled or second.kernel == "triton"):
                    raise
                notes.append(f"agreement {first.label} vs {second.label}: {type(err).__name__}")
                break
            a, b = latents.get((first.label, n)), latents.get((second.label, n))
            same_steps = (first.kind == "naive") == (second.kind == "naive") or (
                args.naive_steps == args.steps
            )
            if a is not None and b is not None and same_steps:
                entry["final_rel"] = rel_err(a, b)
            agreement.append(entry)
            log(f"[agreement {entry['pair']} n={n}] max rel {entry['max_rel']:.2e}")
        pool.release(first)
        pool.release(second)
    if any(a.get("final_rel") is not None for a in agreement):
        notes.append(
            "final latent: relative error of D's final x0 after all steps (informative; "
            "low precision drifts over steps, the one-step columns carry the tolerance)"
        )
    if device.type == "cpu":
        notes.append("CPU peak memory: rise of the peak resident set (VmHWM) over the RSS before")

    record = {
        "machine": machine_info(device),
        "model": args.model,
        "device": args.device,
        "resolution": args.resolution,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": [dataclasses.asdict(r) for r in rows],
        "speedups": speedups(rows, extra),
        "agreement": agreement,
        "memory_check": memory_check(args) if args.memory_check else [],
        "notes": notes,
    }
    return record


def agreement_pairs(variants: list[Variant]) -> list[tuple[Variant, Variant]]:
    """naive-X vs optimized-X, optimized-X vs fused-X, optimized-fp32 vs optimized-bf16, and
    each compiled variant vs its eager twin (same kernel, bfloat16)."""
    by_label = {v.label: v for v in variants}
    pairs = []
    for v in variants:
        if v.kind == "naive" and v.label.replace("naive", "optimized") in by_label:
            pairs.append((v, by_label[v.label.replace("naive", "optimized")]))
        if v.label.startswith("fused-"):
            label = v.label.replace("fused", "optimized")
            twin = dataclasses.replace(v, label=label, kernel="torch")
            pairs.append((by_label.get(label, twin), v))
    if "optimized-fp32" in by_label and "optimized-bf16" in by_label:
        pairs.append((by_label["optimized-fp32"], by_label["optimized-bf16"]))
    for v in (v for v in variants if v.compiled):
        label = "fused-bf16" if v.kernel == "triton" else "optimized-bf16"
        eager = by_label.get(label, Variant(label, "optimized", torch.bfloat16, kernel=v.kernel))
        pairs.append((eager, v))
    return pairs
