"""The oracle row (`protocols.oracle`): the GT picture through the sampler's resize, decoded
and scored like a prediction. Perfect where the sampler's side is the truth's own size; at a
small side, the scores of a picture resized here with PIL (not with the helper); recorded
last among the baselines of every task's records and results.json, set-level metrics too;
brought to old runs by rescore; shown as a ceiling, never as the best baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from sdvicl_bench.cli import app, load_config
from sdvicl_bench.protocols import make_protocol
from sdvicl_bench.protocols.task import Truth
from sdvicl_bench.report.grids import score_line
from sdvicl_bench.report.summary import print_summary
from sdvicl_bench.report.tables import build_table, to_latex, to_markdown
from sdvicl_bench.tasks.keypoints import LANDMARK_COLOURS
from sdvicl_bench.types import ORACLE, ORACLE_LABEL, EpisodeSpec, Landmarks, competitors

runner = CliRunner()
TASKS = ("fgseg", "det", "semseg", "keypoints", "edges", "colorization")
FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
}
"""How the sampler resizes a B picture, by the task's `target_resample` (this test's own map)."""
SIDE = 48
"""A square truth of this size, and the sampler's side: the oracle is lossless."""


def centre_resize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """NEAREST by pixel centres in exact arithmetic (destination j samples source
    floor((j + 1/2) * n / N)), how the fgseg decoder maps a mask back; PIL's NEAREST differs
    at exact ties."""
    rows = (2 * np.arange(size[1]) + 1) * mask.shape[0] // (2 * size[1])
    cols = (2 * np.arange(size[0]) + 1) * mask.shape[1] // (2 * size[0])
    return mask[np.ix_(rows, cols)]


def protocol(demo_root: Path, task: str, *overrides: str):
    fid = ["task.options.fid=false"] if task == "colorization" else []
    cfg = load_config(["debug=smoke", f"data.root={demo_root}", f"task={task}", *fid, *overrides])
    return make_protocol(cfg)


def target_of(task: str, w: int, h: int, classes: Any = None) -> Any:
    """A hand-made truth of (w, h) for `task`, as its family gives one (semseg: of the first
    four `classes`, the ones the dataset declares it draws)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    if task in ("fgseg", "det"):
        mask = np.zeros((h, w), dtype=bool)
        mask[h // 5 : h // 2, w // 6 : w // 2] = True
        if task == "fgseg":
            mask |= ((xx - 0.7 * w) / (0.2 * w)) ** 2 + ((yy - 0.65 * h) / (0.25 * h)) ** 2 <= 1
        return mask
    if task == "semseg":
        ids = np.full((h, w), 255, dtype=np.uint8)
        for c, (y0, x0) in enumerate([(0, 0), (0, w // 3), (h // 2, 0), (h // 2, w // 2)]):
            ids[y0 : y0 + h // 2, x0 : x0 + w // 3] = list(classes or (0, 2, 8, 13))[c]
        return ids
    if task == "keypoints":
        names = tuple(LANDMARK_COLOURS)
        xs = np.linspace(0.15 * w, 0.85 * w, 4).round()
        xy = np.array([(x, y) for y in (round(0.3 * h), round(0.7 * h)) for x in xs], float)
        return Landmarks(names, xy, np.ones(len(names), dtype=bool), (w, h))
    if task == "edges":
        edges = np.zeros((h, w), dtype=np.float32)
        edges[h // 3, 2:-2] = 1.0
        edges[2:-2, w // 4] = 1.0
        edges[(xx - yy) == w // 3] = 1.0
        return edges
    rgb = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    smooth = Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(smooth, dtype=np.float32) / 255.0  # colorization: a colour photo


def truth_of(proto, target: Any) -> Truth:
    scored = proto.family.scored_target(target)
    return Truth(target, scored, proto.render_gt(target))


def score(proto, target: Any):
    spec = EpisodeSpec("x", "x__01", ("y__01",), 0, {"fold": 0})
    truth = truth_of(proto, target)
    picture = Image.new("RGB", (proto.cfg.sampler.resolution,) * 2, (90, 60, 30))
    return truth, proto.score(spec, truth, picture)


def set_level(proto, scored) -> dict[str, float]:
    """Each set-level metric (but FID, which reads a run folder) of the oracle on one record."""
    record = {"id": "x", "query": "x__01", "group": "0", **scored.extra}
    out = {}
    for name in proto.dataset_metrics:
        if name != "fid":
            value = proto.dataset_metric(name, [record], ORACLE, None)
            out[name] = value["overall"]["mean"] if isinstance(value, dict) else value
    return out


# ----------------------------------------------------------------------------- the protocol


@pytest.mark.parametrize("task", TASKS)
def test_oracle_is_perfect_when_the_side_is_the_truths_size(demo_root, task):
    proto = protocol(demo_root, task, f"sampler.resolution={SIDE}")
    _, scored = score(proto, target_of(task, SIDE, SIDE, proto.cfg.task.options.get("classes")))
    assert list(scored.baselines)[-1] == ORACLE == proto.baselines[-1]
    oracle = scored.baselines[ORACLE]
    assert set(oracle) == set(scored.scores) == set(proto.metrics)
    for name, value in [*oracle.items(), *set_level(proto, scored).items()]:
        best = 1.0 if proto.metric_specs[name].get("higher_is_better", True) else 0.0
        assert value == pytest.approx(best, abs=1e-9), name
    if task in ("fgseg", "semseg", "keypoints"):  # the headline numbers, spelled out
        want = {"fgseg": ("iou", 1.0), "semseg": ("miou", 1.0), "keypoints": ("pck", 1.0)}
        name, value = want[task]
        assert {**oracle, **set_level(proto, scored)}[name] == value
    if task == "keypoints":
        assert oracle["mse"] == 0.0 and oracle["ne"] == 0.0


@pytest.mark.parametrize(
    ("task", "options"),
    [*((t, ()) for t in TASKS), ("fgseg", ("task.options.score_size=24",))],
    ids=[*TASKS, "fgseg-score_size"],
)
def test_oracle_at_a_small_side_scores_a_picture_resized_with_pil(demo_root, task, options):
    side, (w, h) = 16, (60, 44)
    proto = protocol(demo_root, task, f"sampler.resolution={side}", *options)
    truth, scored = score(proto, target_of(task, w, h, proto.cfg.task.options.get("classes")))
    # the GT picture resized here as the sampler resizes B, then decoded and scored like ours
    resized = proto.render_gt(truth.target).convert("RGB")
    resized = resized.resize((side, side), FILTERS[proto.target_resample])
    prediction = proto.decode(proto.family.scored_picture(resized), truth.scored)
    want = {name: float(fn(prediction, truth.scored)) for name, fn in proto.per_sample.items()}
    assert scored.baselines[ORACLE] == pytest.approx(want, nan_ok=True)
    for aggregation in {a for a in proto.set_level.values() if a.collect}:
        collected = aggregation.collect(prediction, truth.scored, truth.extras)
        assert scored.extra[aggregation.field][ORACLE] == collected


def test_fgseg_oracle_at_a_small_side_as_computed_by_hand(demo_root):
    side, (w, h) = 16, (60, 44)
    proto = protocol(demo_root, "fgseg", f"sampler.resolution={side}")
    mask = target_of("fgseg", w, h)
    _, scored = score(proto, mask)
    nearest = Image.Resampling.NEAREST
    small = Image.fromarray(mask.astype(np.uint8) * 255).resize((side, side), nearest)
    back = centre_resize(np.asarray(small) > 127, (w, h))  # the decoder's way back
    iou = (back & mask).sum() / (back | mask).sum()
    assert 0.5 < iou < 1.0  # the side loses something, so the check is not trivial
    assert scored.baselines[ORACLE]["iou"] == pytest.approx(iou)
    fg, bg = (back & mask).sum(), (~back & ~mask).sum()
    fb = ((fg / (back | mask).sum()) + (bg / (~back | ~mask).sum())) / 2
    assert set_level(proto, scored)["fb_iou"] == pytest.approx(fb)


# ----------------------------------------------------------------------------- end to end


def run(*args: str) -> tuple[Path, Any]:
    """A smoke run (tiny model, 64 px); the summary printed wide enough for whole labels."""
    result = runner.invoke(app, ["run", *args, "debug=smoke"], env={"COLUMNS": "400"})
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    said = [x for x in result.output.splitlines() if x.startswith("Run folder: ")]
    folder = said[-1].removeprefix("Run folder: ") if said else result.stdout.splitlines()[-1]
    return Path(folder.strip()), result


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_records_and_reports_the_oracle(workdir, demo_root, task):
    no_fid = ["task.options.fid=false"] if task == "colorization" else []  # minutes on a CPU
    run_dir, result = run(f"task={task}", f"data.root={demo_root}", *no_fid)
    samples = lines(run_dir / "samples.jsonl")
    results = json.loads((run_dir / "results.json").read_text())
    fields = {"counts", "confusion", "boundary_counts"} & set(samples[0])
    for s in samples:
        assert list(s["baselines"])[-1] == ORACLE
        assert set(s["baselines"][ORACLE]) == set(s["scores"])
        assert all(ORACLE in s[f] for f in fields)
    assert task != "fgseg" or fields == {"counts"}
    assert task != "semseg" or fields == {"confusion"}
    assert list(results["baselines"])[-1] == ORACLE
    oracle = results["baselines"][ORACLE]
    assert set(oracle) == set(results["metrics"])  # per-sample and set-level metrics alike
    for name, block in oracle.items():
        mean = block["overall"]["mean"]
        assert finite(mean) or name == "fid", name  # FID: the next test
    # the summary shows it last, as a ceiling, not among the baselines
    out = result.output
    assert ORACLE_LABEL in out and "baseline: oracle" not in out
    shown = [out.index(f"baseline: {b}") for b in competitors(results["baselines"])]
    assert out.index(ORACLE_LABEL) > max(shown)


def test_colorization_oracle_fid_reads_the_saved_gt_through_the_pipeline(
    demo_root, tmp_path, monkeypatch
):
    """FID's inputs (its Inception pass is tested in test_fid.py): the oracle's pictures are
    the saved GT pictures resized here to the sampler's side; ours stay the predictions."""
    from sdvicl_bench.metrics import fid

    calls: list[tuple[list, list]] = []

    def fake_fid(preds, targets, weights=None, preprocess=None) -> float:
        calls.append((preds, targets))
        return 1.0

    monkeypatch.setattr(fid, "resolve_weights", lambda path=None: None)
    monkeypatch.setattr(fid, "fid_score", fake_fid)
    proto = protocol(demo_root, "colorization", "sampler.resolution=16", "task.options.fid=true")
    (tmp_path / "pictures").mkdir()
    samples = []
    for i in range(2):
        colour = (target_of("colorization", 60 - 8 * i, 44) * 255).round().astype(np.uint8)
        Image.fromarray(colour).save(tmp_path / f"pictures/{i}.gt.png")
        Image.new("RGB", (16, 16), (i, 2, 3)).save(tmp_path / f"pictures/{i}.pred.png")
        samples.append(
            {"id": str(i), "gt": f"pictures/{i}.gt.png", "pred": f"pictures/{i}.pred.png"}
        )
    assert proto.dataset_metric("fid", samples, ORACLE, tmp_path) == 1.0
    assert math.isnan(proto.dataset_metric("fid", samples, "copy_b", tmp_path))
    assert proto.dataset_metric("fid", samples, None, tmp_path) == 1.0
    (preds, targets), (ours, _) = calls
    gts = [Image.open(tmp_path / s["gt"]) for s in samples]
    resample = FILTERS[proto.target_resample]
    for pred, target, gt in zip(preds, targets, gts, strict=True):
        np.testing.assert_array_equal(pred * 255, np.asarray(gt.resize((16, 16), resample)))
        np.testing.assert_array_equal(target * 255, np.asarray(gt))
    assert [tuple(p[0, 0] * 255) for p in ours] == [(0, 2, 3), (1, 2, 3)]


@pytest.mark.slow
def test_rescore_gives_an_old_run_its_oracle(workdir, demo_root):
    run_dir, _ = run("task=fgseg", f"data.root={demo_root}", "limit=3", "--quiet")
    samples = lines(run_dir / "samples.jsonl")
    want = json.loads((run_dir / "results.json").read_text())
    # as an older version wrote them: no oracle row, no oracle counts
    old = [json.loads(json.dumps(s)) for s in samples]
    for s in old:
        del s["baselines"][ORACLE], s["counts"][ORACLE]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in old))

    _, again = run("task=fgseg", f"data.root={demo_root}", "limit=3")  # nothing to sample
    assert "sdvicl-bench rescore" in again.output  # says how the old records gain it
    partial = json.loads((run_dir / "results.json").read_text())
    assert partial["baselines"][ORACLE]["iou"]["overall"]["n"] == 0  # n/a, not an error
    assert math.isnan(partial["baselines"][ORACLE]["class_miou"]["overall"]["mean"])

    result = runner.invoke(app, ["rescore", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    assert lines(run_dir / "samples.jsonl") == samples
    after = json.loads((run_dir / "results.json").read_text())
    canonical = lambda r: json.dumps(r["baselines"], sort_keys=True)  # noqa: E731 (NaN == NaN)
    assert canonical(after) == canonical(want)
    # the oracle of the saved GT picture, resized here
    side = json.loads((run_dir / "run.json").read_text())["config"]["sampler"]["resolution"]
    for s in samples:
        gt = np.asarray(Image.open(run_dir / s["gt"]).convert("L")) > 127
        small = Image.fromarray(gt.astype(np.uint8) * 255).resize((side, side), FILTERS["nearest"])
        back = centre_resize(np.asarray(small) > 127, gt.shape[::-1])
        iou = (back & gt).sum() / (back | gt).sum()
        assert s["baselines"][ORACLE]["iou"] == pytest.approx(iou)


# ----------------------------------------------------------------------------- reports


def _block(mean: float, per_sample: bool = True) -> dict[str, Any]:
    overall = {"mean": mean, "n": 4}
    if per_sample:
        overall.update(low=mean - 0.1, high=mean + 0.1)
    return {"overall": overall, "per_fold": {}, "mean_of_folds": float("nan")}


def _results(adain: bool = True) -> dict[str, Any]:
    """A semseg-like run whose oracle beats every baseline (as a ceiling does)."""
    metrics = {"miou": {"higher_is_better": True, "scale": 100}}
    return {
        "key": f"k{adain}",
        "task": "semseg",
        "task_version": 1,
        "n": 4,
        "note": None,
        "metrics": {"miou": _block(0.30, per_sample=False)},
        "baselines": {
            "black": {"miou": _block(0.0, per_sample=False)},
            "copy_b": {"miou": _block(0.20, per_sample=False)},
            ORACLE: {"miou": _block(0.95, per_sample=False)},
        },
        "config": {
            "task": {"name": "semseg", "prompts": 1, "metrics": metrics},
            "model": {"name": "sd15"},
            "retrieval": {"name": "clip_knn"},
            "sampler": {"resolution": 512, "adain": {"enabled": adain}},
            "prompts": None,
        },
        "run_dir": f"runs/semseg/{adain}",
    }


def test_the_oracle_is_never_the_best_baseline():
    baselines = _results()["baselines"]
    best = max(competitors(baselines), key=lambda k: baselines[k]["miou"]["overall"]["mean"])
    assert best == "copy_b" and list(competitors(baselines)) == ["black", "copy_b"]
    df = build_table([_results()])
    assert ORACLE not in " ".join(df[df.source == "baseline"].method)
    assert df[df.source == "baseline"].value.max() == pytest.approx(20.0)


def test_tables_show_the_oracle_last_as_a_ceiling():
    df = build_table([_results()])
    assert df.iloc[-1].method == ORACLE_LABEL and df.iloc[-1].source == "ceiling"
    assert df.iloc[-1].value == pytest.approx(95.0) and "512 px" in df.iloc[-1].note
    assert (df.source == "ceiling").sum() == 1
    assert f"| semseg | {ORACLE_LABEL} | miou | 95.00 |" in to_markdown(df)
    tex = to_latex(df).splitlines()
    first = next(i for i, x in enumerate(tex) if x.startswith("semseg & oracle"))
    assert tex[first - 1] == "\\hline"  # set apart by a rule
    # two variants (delta tables, ablations): one oracle row each, told apart, still last
    two = build_table([_results(True), _results(False)])
    ceilings = two[two.source == "ceiling"]
    assert len(ceilings) == 2 and len(set(ceilings.method)) == 2
    assert all(m.startswith(ORACLE_LABEL) for m in ceilings.method)
    assert list(two.source[-2:]) == ["ceiling", "ceiling"]


def test_tables_of_a_run_without_an_oracle_have_no_ceiling_row():
    old = _results()
    del old["baselines"][ORACLE]
    assert "ceiling" not in set(build_table([old]).source)


def test_summary_shows_the_oracle_last_dim_and_labelled(tmp_path):
    console = Console(record=True, width=200, force_terminal=True, color_system="standard")
    print_summary(_results(), tmp_path, console)
    text = console.export_text()  # (clears the record)
    assert "baseline: oracle" not in text and ORACLE_LABEL in text
    rows = [x for x in text.splitlines() if "│" in x and "method" not in x]
    assert ORACLE_LABEL in rows[-1] and "95" in rows[-1]
    print_summary(_results(), tmp_path, console)
    styled = console.export_text(styles=True)
    (line,) = [x for x in styled.splitlines() if ORACLE_LABEL in x]
    assert "\x1b[2m" in line  # dim


def test_grid_score_line_names_the_ceiling():
    sample = {"id": "f0-a__1", "scores": {"iou": 0.5}, "baselines": {ORACLE: {"iou": 0.975}}}
    assert score_line(sample) == "f0-a__1  iou 0.5  |  ceiling (oracle): iou 0.975"
    assert score_line({"id": "a", "scores": {"iou": 0.5}, "baselines": {}}) == "a  iou 0.5"
