"""`sdvicl-bench merge`: the shards of one run (a SLURM array's folders) folded into one.

The sample files of every folder are claimed first (a shard still running stops the merge
in one line); records are folded one per episode id in frozen order (`records.merge_samples`),
pictures copied, and results.json and the grid written anew over every sample.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from sdvicl_bench.errors import DataError
from sdvicl_bench.report.lock import SampleLock
from sdvicl_bench.report.records import MERGED_NAME, sample_files, write_json
from sdvicl_bench.running.folder import RunFolder, RunOutcome, protocol_of
from sdvicl_bench.running.pictures import write_grid
from sdvicl_bench.running.reporter import Reporter
from sdvicl_bench.running.results import results_of


def merge(
    run_dirs: list[Path],
    *,
    quiet: bool = False,
    console: Console | None = None,
    reporter: Reporter | None = None,
) -> RunOutcome:
    """Merge run folders of one key (shards of a SLURM array) into the first; results.json and
    grid.png anew, describing every sample, with config.shard null. Each other folder gets a
    `merged.json` naming the first: tables then count its episodes once, and a rerun of the
    run resumes the merged folder, recomputing nothing.

    Every sample file of the folders is claimed first (a shard still running there stops
    the merge with a one-line DataError). Output goes through `reporter` (or one made of
    `quiet`, `console`).
    """
    reporter = Reporter.of(reporter, quiet=quiet, console=console)
    infos = []
    for d in run_dirs:
        if not (d / "run.json").is_file():
            raise DataError(
                f"{d} is not a run folder (no run.json). "
                "Fix: pass folders under results/runs/<task>/."
            )
        infos.append(json.loads((d / "run.json").read_text()))
    keys = {i["key"] for i in infos}
    if len(keys) != 1:
        raise DataError(
            f"Run folders of different runs (keys {', '.join(sorted(keys))}). "
            "Fix: merge shards of one run only."
        )
    target = run_dirs[0]
    others = list({d.resolve(): d for d in run_dirs[1:] if d.resolve() != target.resolve()})
    claimed = [target / "samples.jsonl", *sample_files(target)]
    claimed += [path for other in others for path in sample_files(other)]
    with contextlib.ExitStack() as claims:
        for path in dict.fromkeys(claimed):
            claims.enter_context(SampleLock(path))
        for other in others:
            for path in sample_files(other):
                shutil.copyfile(path, target / f"{path.stem}.from-{other.name}.jsonl")
            for pic in (other / "pictures").glob("*"):
                if not (target / "pictures" / pic.name).exists():
                    shutil.copyfile(pic, target / "pictures" / pic.name)
        cfg, protocol = protocol_of(target)
        cfg = replace(cfg, shard=None)  # the merged folder is the whole run
        folder = RunFolder(target)
        episodes = folder.episodes()
        reporter.damaged(folder.merge_shards(episodes), target, redone=False)
        for path in target.glob("samples*.from-*.jsonl"):
            path.unlink()
        for other in others:  # part of the merged run now: tables and runs skip it
            write_json(other / MERGED_NAME, {"into": target.name, "key": infos[0]["key"]})
        samples = folder.samples(episodes)
        key = infos[0]["key"]
        results = results_of(cfg, protocol, key, samples, 0.0, 0, run_dir=target)
        folder.write_results(results)
        if cfg.save_pictures and samples:
            write_grid(protocol, target, reporter=reporter)
    reporter.summary(results, target)
    return RunOutcome(target, results, True, 0)
