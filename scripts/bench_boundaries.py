#!/usr/bin/env python
"""BSDS boundary scoring benchmark: seconds of one CPU core per 481 x 321 image (ODS/OIS counts).

Times ``boundary_counts`` (99 thresholds, 5 annotators) on synthetic BSDS-like scenes
(``scene``: 5 annotators drawn from one warped-Voronoi segmentation, each merging some regions
and jittered by ~1.5 px) and four prediction maps per scene:
- clean: a soft boundary map (Gaussian profile around a jittered copy of the boundaries, with
  per-region strength) plus faint texture edges;
- thinned_noisy: clean + uniform noise, kept only on the one-pixel skeleton of its pixels
  >= 0.25 (an NMS-like noisy detector output);
- noisy: clean + uniform noise (no thinning);
- uniform: uniform noise in [0, 1].
The process is pinned to one core (Linux). ``--impl FILE`` times another implementation
exposing ``boundary_counts`` (e.g. an older ``sdvicl_bench/metrics/boundaries.py`` from git)
on the same maps; the counts' ODS are printed beside, so two runs can be compared.

Example:
    python scripts/bench_boundaries.py --images 1
    git show HEAD~1:sdvicl_bench/metrics/boundaries.py > /tmp/old_boundaries.py
    python scripts/bench_boundaries.py --impl /tmp/old_boundaries.py --maps clean noisy
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import thin

MAPS = ("clean", "thinned_noisy", "noisy", "uniform")
SHAPE = (321, 481)


def warped_voronoi(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n: int,
    warp: float = 40.0,
    smooth: float = 14.0,
) -> np.ndarray:
    """Labels (H, W) of n regions: Voronoi cells of random seeds under a smooth random warp."""
    seeds = rng.random((n, 2)) * shape
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    yy = yy + ndi.gaussian_filter(rng.standard_normal(shape), smooth) * warp
    xx = xx + ndi.gaussian_filter(rng.standard_normal(shape), smooth) * warp
    best = np.full(shape, np.inf, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.int32)
    for i, (sy, sx) in enumerate(seeds):
        d = (yy - sy) ** 2 + (xx - sx) ** 2
        closer = d < best
        best[closer], labels[closer] = d[closer], i
    return labels


def boundaries_of(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label, bool (H, W)."""
    out = np.zeros(labels.shape, dtype=bool)
    out[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    out[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return out


def jitter(rng: np.random.Generator, labels: np.ndarray, amplitude: float) -> np.ndarray:
    """Labels moved by a smooth random displacement of about ``amplitude`` px."""
    dy, dx = (
        ndi.gaussian_filter(rng.standard_normal(labels.shape), 8) * amplitude * 8 for _ in "yx"
    )
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]]
    return ndi.map_coordinates(labels, [yy + dy, xx + dx], order=0, mode="nearest")


def scene(seed: int, shape: tuple[int, int] = SHAPE, annotators: int = 5):
    """(annotators bool (5, H, W), {map name: float (H, W) in [0, 1]}) of one synthetic image."""
    rng = np.random.default_rng(seed)
    labels = warped_voronoi(rng, shape, 24)
    gts = []
    for _ in range(annotators):
        merged = labels.copy()
        for region in rng.permutation(24)[: rng.integers(0, 10)]:
            merged[merged == region] = rng.integers(24)
        gts.append(boundaries_of(jitter(rng, merged, 1.5)))
    strength = rng.uniform(0.3, 1.0, 24)
    dist, (iy, ix) = ndi.distance_transform_edt(
        ~boundaries_of(jitter(rng, labels, 1.0)), return_indices=True
    )
    clean = strength[labels[iy, ix]] * np.exp(-(dist**2) / (2 * 1.5**2))
    fine = boundaries_of(warped_voronoi(rng, shape, 60, warp=20.0, smooth=6.0)).astype(float)
    clean = np.clip(clean + 0.35 * rng.random() * ndi.gaussian_filter(fine, 1.0) * 2.5, 0, 1)
    noisy = np.clip(clean + 0.3 * rng.random(shape) - 0.1, 0, 1)
    maps = {
        "clean": clean,
        "thinned_noisy": np.where(thin(noisy >= 0.25), noisy, 0.0),
        "noisy": noisy,
        "uniform": rng.random(shape),
    }
    return np.stack(gts), maps


def load_impl(path: str | None):
    """The module whose ``boundary_counts`` is timed: this checkout's, or the file at ``path``."""
    if path is None:
        from sdvicl_bench.metrics import boundaries

        return boundaries
    spec = importlib.util.spec_from_file_location("impl_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--images", type=int, default=1, help="synthetic scenes (seeds 0..N-1)")
    p.add_argument("--maps", nargs="+", choices=MAPS, default=list(MAPS))
    p.add_argument("--impl", help="a file with boundary_counts to time instead of this checkout's")
    p.add_argument("--json", type=Path, help="write the timings and counts here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    impl = load_impl(args.impl)
    from sdvicl_bench.metrics import boundaries

    rows = []
    for seed in range(args.images):
        gts, maps = scene(seed)
        for name in args.maps:
            wall, cpu = time.perf_counter(), time.process_time()
            counts = np.asarray(impl.boundary_counts(maps[name], gts))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            score = boundaries.ods(counts[None])
            rows.append({"seed": seed, "map": name, "wall_s": wall, "cpu_s": cpu, "ods": score})
            rows[-1]["counts"] = counts.tolist()
            print(f"scene {seed} {name:14s} {wall:7.2f} s wall {cpu:7.2f} s cpu  ODS {score:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"impl": args.impl or "checkout", "rows": rows}))


if __name__ == "__main__":
    main()
