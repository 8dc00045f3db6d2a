"""Tables rebuilt from hand-made run folders: golden Markdown, CSV, LaTeX, references."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sdvicl_bench.errors import DataError
from sdvicl_bench.report.tables import (
    build_table,
    load_runs,
    to_csv,
    to_latex,
    to_markdown,
    write_tables,
)


def _ci(mean: float, low: float, high: float, n: int) -> dict[str, float]:
    return {"mean": mean, "low": low, "high": high, "n": n}


def _per_sample(overall: dict, folds: dict[str, dict]) -> dict[str, Any]:
    means = [f["mean"] for f in folds.values()]
    mean_of_folds = sum(means) / len(means) if means else float("nan")
    return {"overall": overall, "per_fold": folds, "mean_of_folds": mean_of_folds}


def _config(task: dict, model: str, retrieval: str, prompts: int | None) -> dict[str, Any]:
    return {
        "task": task,
        "model": {"name": model, "seed": 0},
        "retrieval": {"name": retrieval},
        "sampler": {"steps": 70},
        "prompts": prompts,
        "seed": 0,
        "output_dir": "results/runs",
    }


FGSEG_TASK = {
    "name": "fgseg",
    "prompts": 1,
    "metrics": {"iou": {"higher_is_better": True, "scale": 100}},
}
SEMSEG_TASK = {
    "name": "semseg",
    "prompts": 1,
    "metrics": {
        "miou": {"higher_is_better": True, "scale": 100},
        "accuracy": {"higher_is_better": True, "scale": 100},
    },
}


def _fgseg_results() -> dict[str, Any]:
    """sd15 weights, the task's default prompts (config prompts null), two folds of unequal
    size: the mean of folds (0.4) is not the per-episode mean (0.5)."""
    return {
        "key": "aaaaaaaaaaaa",
        "task": "fgseg",
        "task_version": 1,
        "n": 4,
        "metrics": {
            "iou": _per_sample(
                _ci(0.5, 0.4, 0.6, 4),
                {"0": _ci(0.2, 0.2, 0.2, 1), "1": _ci(0.6, 0.5, 0.7, 3)},
            )
        },
        "baselines": {
            "black": {
                "iou": _per_sample(
                    _ci(0.0, 0.0, 0.0, 4), {"0": _ci(0.0, 0.0, 0.0, 2), "1": _ci(0.0, 0.0, 0.0, 2)}
                )
            },
            "copy_b": {
                "iou": _per_sample(
                    _ci(0.25, 0.125, 0.375, 4),
                    {"0": _ci(0.2, 0.1, 0.3, 2), "1": _ci(0.3, 0.2, 0.4, 2)},
                )
            },
        },
        "note": None,
        "config": _config(FGSEG_TASK, "sd15", "clip_knn", None),
        "versions": {},
        "git": None,
        "device": "cpu",
        "timing": {},
    }


def _semseg_results() -> dict[str, Any]:
    """Random weights (tiny), 2 prompts, set-level metrics only."""
    return {
        "key": "bbbbbbbbbbbb",
        "task": "semseg",
        "task_version": 1,
        "n": 3,
        "metrics": {
            "miou": {"overall": {"mean": 0.25, "n": 3}},
            "accuracy": {"overall": {"mean": 0.75, "n": 3}},
        },
        "baselines": {
            "black": {
                "miou": {"overall": {"mean": 0.05, "n": 3}},
                "accuracy": {"overall": {"mean": 0.3, "n": 3}},
            }
        },
        "note": "model=tiny has random weights",
        "config": _config(SEMSEG_TASK, "tiny", "random", 2),
        "versions": {},
        "git": None,
        "device": "cpu",
        "timing": {},
    }


def _write_run(base: Path, results: dict[str, Any]) -> Path:
    folder = base / results["task"] / f"20250101-000000-{results['key']}"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    return folder


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    # semseg written first: the table must still order fgseg first
    _write_run(root, _semseg_results())
    _write_run(root, _fgseg_results())
    return root


# Reference rows come from the real reference_numbers.yaml: editing it updates this golden.
GOLDEN_MARKDOWN = """\
| task | method | metric | value | per-episode mean | 95% CI | folds | n | prompts | note | source |
|---|---|---|---:|---:|---|---|---:|---:|---|---|
| fgseg | SD-VICL (sd15, n=1, clip_knn) | iou | 40.00 | 50.00 | [40.00, 60.00] | 20.00 / 60.00 | 4 | 1 | partial: 2 of 4 folds | ours |
| fgseg | baseline: black | iou | 0.00 | 0.00 | [0.00, 0.00] | 0.00 / 0.00 | 4 | 1 | partial: 2 of 4 folds | baseline |
| fgseg | baseline: copy_b | iou | 25.00 | 25.00 | [12.50, 37.50] | 20.00 / 30.00 | 4 | 1 | partial: 2 of 4 folds | baseline |
| fgseg | SD-VICL (paper Tab. 9/10, full) | iou | 55.49 |  |  |  |  | 5 | prompts inferred | reference |
| fgseg | SD-VICL (paper Tab. 9, without AdaIN) | iou | 51.55 |  |  |  |  | 5 | prompts inferred | reference |
| fgseg | SD-VICL (paper Tab. 10, only 64x64 layers) | iou | 50.33 |  |  |  |  | 5 | prompts inferred | reference |
| fgseg | VP MAE-VQGAN, random prompts | iou | 27.56 |  |  | 28.66 / 30.21 / 27.81 / 23.55 |  | 1 | protocol differs: prompts of a random fold class (UnsupPR --random), 3 seeds, score_size=111, binarize=vp, episodes=1000 | reference |
| fgseg | VP MAE-VQGAN, UnsupPR prompts | iou | 33.56 |  |  | 34.75 / 35.92 / 32.41 / 31.16 |  | 1 | protocol differs: score_size=111, binarize=vp, class_filter=none, prompt_class=last_listed | reference |
| fgseg | VP MAE-VQGAN, SupPR prompts | iou | 35.56 |  |  | 37.08 / 38.43 / 34.40 / 32.32 |  | 1 | protocol differs: SupPR's trained retriever, score_size=111, binarize=vp | reference |
| fgseg | paper: relative claim |  | n/a |  |  |  |  | n/a | SD-VICL +8.9 mIoU over VP and +3.2 over IMProv (absolute points) | reference |
| semseg | SD-VICL (tiny, n=2, random) | miou | 25.00 |  |  |  | 3 | 2 | random weights | ours |
| semseg | SD-VICL (tiny, n=2, random) | accuracy | 75.00 |  |  |  | 3 | 2 | random weights | ours |
| semseg | baseline: black | miou | 5.00 |  |  |  | 3 | 2 |  | baseline |
| semseg | baseline: black | accuracy | 30.00 |  |  |  | 3 | 2 |  | baseline |
| semseg | SD-VICL IWPE (paper Tab. 4) | miou | 27.01 |  |  |  |  | n/a | prompts not stated | reference |
| semseg | SD-VICL feature ensembling (paper Tab. 4) | miou | 22.97 |  |  |  |  | n/a | prompts not stated | reference |
| semseg | paper: relative claim |  | n/a |  |  |  |  | n/a | IWPE +4.9 / feature ensembling +0.9 mIoU and +6.8 / +0.9 accuracy over a single prompt (earlier draft) | reference |
| semseg | paper: relative claim |  | n/a |  |  |  |  | n/a | SD-VICL +0.8 mIoU over the best baseline | reference |
"""  # noqa: E501


def test_golden_markdown(runs_root: Path) -> None:
    table = to_markdown(build_table(load_runs([runs_root])))
    assert table == GOLDEN_MARKDOWN


def test_run_folder_and_parent_give_the_same_runs(runs_root: Path) -> None:
    one = next((runs_root / "fgseg").iterdir())
    assert [r["key"] for r in load_runs([one])] == ["aaaaaaaaaaaa"]
    # the same run reached twice is read once
    assert len(load_runs([runs_root, one])) == 2


def test_csv_round_trips(runs_root: Path) -> None:
    df = build_table(load_runs([runs_root]))
    back = pd.read_csv(io.StringIO(to_csv(df)))
    assert len(back) == len(df)
    assert list(back.columns) == list(df.columns)
    ours = back[(back.task == "fgseg") & (back.source == "ours")]
    assert ours["value"].tolist() == [pytest.approx(40.0)]  # the mean of folds leads
    assert ours["episode_mean"].tolist() == [50.0]
    assert back[back.method == "paper: relative claim"]["value"].isna().all()


def test_latex_escapes(runs_root: Path) -> None:
    tex = to_latex(build_table(load_runs([runs_root])))
    assert tex.startswith("\\begin{tabular}")
    assert tex.rstrip().endswith("\\end{tabular}")
    assert "clip\\_knn" in tex
    assert "copy\\_b" in tex
    assert "95\\% CI" in tex
    assert "clip_knn" not in tex.replace("clip\\_knn", "")


def test_missing_folder_is_one_line_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_runs([tmp_path / "nope"])
    assert "\n" not in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"No results\.json"):
        load_runs([empty])


def test_unreadable_results_is_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "fgseg" / "x-cccccccccccc"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text("{not json")
    with pytest.raises(DataError) as info:
        load_runs([tmp_path])
    assert "\n" not in str(info.value)


def test_references_carry_their_prompts(runs_root: Path) -> None:
    df = build_table(load_runs([runs_root]))
    refs = df[(df.task == "fgseg") & (df.source == "reference")]
    vp = refs[refs.method == "VP MAE-VQGAN, random prompts"].iloc[0]
    assert vp.value == pytest.approx(27.56)
    assert vp.prompts == 1
    assert vp.folds == "28.66 / 30.21 / 27.81 / 23.55"
    paper = refs[refs.method == "SD-VICL (paper Tab. 9/10, full)"].iloc[0]
    assert paper.value == pytest.approx(55.49)
    assert paper.prompts == 5
    assert paper.note == "prompts inferred"
    md = to_markdown(df)
    assert "| fgseg | VP MAE-VQGAN, random prompts | iou | 27.56 |" in md
    assert "| 55.49 |" in md


def test_task_with_only_relative_claims_prints_na(tmp_path: Path) -> None:
    results = _semseg_results()
    results.update(task="keypoints", key="dddddddddddd")
    task = {
        "name": "keypoints",
        "prompts": 1,
        "metrics": {
            "pck": {"higher_is_better": True, "scale": 100},
            "mse": {"higher_is_better": False},
        },
    }
    results["config"] = _config(task, "sd15", "clip_knn", None)
    results["metrics"] = {
        "pck": _per_sample(_ci(0.5, 0.25, 0.75, 3), {}),
        "mse": _per_sample(_ci(0.012345, 0.01, 0.015, 3), {}),
    }
    results["baselines"] = {}
    _write_run(tmp_path, results)
    df = build_table(load_runs([tmp_path]))
    refs = df[df.source == "reference"]
    assert len(refs) == 1
    ref = refs.iloc[0]
    assert ref.method == "paper: relative claim"
    assert pd.isna(ref.value)
    assert "PCK 7x higher" in ref.note
    md = to_markdown(df)
    assert "| keypoints | paper: relative claim |  | n/a |" in md
    # unscaled metrics get 4 significant digits, scaled ones 2 decimals
    assert "| keypoints | SD-VICL (sd15, n=1, clip_knn) | mse | 0.01235 |  | [0.01, 0.015] |" in md
    assert "| keypoints | SD-VICL (sd15, n=1, clip_knn) | pck | 50.00 |  | [25.00, 75.00] |" in md


def test_repeated_methods_are_told_apart(tmp_path: Path) -> None:
    for key, adain in (("eeeeeeeeeeee", True), ("ffffffffffff", False)):
        results = _fgseg_results()
        results["key"] = key
        results["config"]["sampler"] = {"steps": 70, "adain": {"enabled": adain}}
        _write_run(tmp_path, results)
    df = build_table(load_runs([tmp_path]))
    ours = df[df.source == "ours"].method.tolist()
    assert ours == [
        "SD-VICL (sd15, n=1, clip_knn; sampler.adain.enabled=True)",
        "SD-VICL (sd15, n=1, clip_knn; sampler.adain.enabled=False)",
    ]
    assert "baseline: black (sd15, n=1, clip_knn; sampler.adain.enabled=True)" in df.method.tolist()


def test_write_tables(runs_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    written = write_tables([runs_root], out)
    assert [p.name for p in written] == ["tables.md", "tables.csv", "tables.tex"]
    df = build_table(load_runs([runs_root]))
    assert written[0].read_text() == to_markdown(df)
    assert written[1].read_text() == to_csv(df)
    assert written[2].read_text() == to_latex(df)


# ---------------------------------------------------------------------------------------
# Partial runs say so (issue 23 item 5)


def _folds(counts: dict[str, int]) -> dict[str, Any]:
    folds = {g: _ci(0.5, 0.4, 0.6, n) for g, n in counts.items()}
    return _per_sample(_ci(0.5, 0.4, 0.6, sum(counts.values())), folds)


@pytest.mark.parametrize(
    ("counts", "folds", "expected"),
    [
        ({"0": 8, "1": 8, "2": 8, "3": 8}, [0, 1, 2, 3], ""),
        ({"0": 8}, [0], "partial: 1 of 4 folds"),  # task.folds=[0]: still 1 of Pascal-5i's 4
        ({"0": 8, "1": 8, "2": 0, "3": 0}, [0, 1, 2, 3], "partial: 2 of 4 folds"),
        (
            {"0": 8, "1": 7, "2": 8, "3": 8},
            [0, 1, 2, 3],
            "partial: unequal folds (0: 8, 1: 7, 2: 8, 3: 8)",
        ),
    ],
)
def test_partial_phrase(counts: dict[str, int], folds: list[int], expected: str) -> None:
    from sdvicl_bench.report.tables import partial_phrase

    results = _fgseg_results()
    results["metrics"] = {"iou": _folds(counts)}
    results["config"]["task"] = {**FGSEG_TASK, "folds": folds}
    assert partial_phrase(results) == expected


def test_tasks_without_folds_are_never_partial() -> None:
    from sdvicl_bench.report.tables import partial_phrase

    results = _semseg_results()  # no folds at all
    assert partial_phrase(results) == ""
    # keypoints' clothes-type groups are breakdowns, not folds: unequal groups are normal
    kp = _fgseg_results() | {"task": "keypoints"}
    kp["config"]["task"] = {"name": "keypoints", "metrics": FGSEG_TASK["metrics"]}
    kp["metrics"] = {"iou": _folds({"upper": 3, "lower": 2, "full": 4})}
    assert partial_phrase(kp) == ""


def test_partial_is_marked_in_every_table_format_and_the_summary(runs_root: Path) -> None:
    from rich.console import Console

    from sdvicl_bench.report.summary import print_summary

    table = build_table(load_runs([runs_root]))
    ours = table[(table.task == "fgseg") & (table.source == "ours")]
    assert (ours.note == "partial: 2 of 4 folds").all()
    assert "partial: 2 of 4 folds" in to_csv(table)
    assert "partial: 2 of 4 folds" in to_latex(table)
    console = Console(record=True, width=200)
    print_summary(_fgseg_results(), runs_root, console)
    assert "partial: 2 of 4 folds" in console.export_text()
    complete = _fgseg_results()
    complete["metrics"] = {"iou": _folds({"0": 2, "1": 2, "2": 2, "3": 2})}
    console = Console(record=True, width=200)
    print_summary(complete, runs_root, console)
    assert "partial:" not in console.export_text()
