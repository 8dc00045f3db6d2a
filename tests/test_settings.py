"""Issue 24 item 4 / issue 25 item 2: every setting says what it changes and which values it
takes (sdvicl_bench/settings.py).

A setting of the config without a declaration fails here (a planted field too); an
out-of-range or non-finite number is one line and exit 2 through the CLI, naming the setting,
its range and the fix; values on the edge of a range pass. The run key's view of the task and
sampler equals the hand-written rule the key used before the declarations (so every existing
run folder keeps its key); `tables` ignores exactly the old lists plus the speed settings
they missed; docs/SETTINGS.md is what `settings_markdown` writes.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sdvicl_bench import settings
from sdvicl_bench.cli import app, choices, load_config
from sdvicl_bench.config import RunConfig, SamplerConfig, TaskConfig, to_dict
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.report.runs import ignored
from sdvicl_bench.settings import Range, check_values, declaration, flatten, undeclared
from tests.cli_helpers import error_line

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
BASE = ["task=fgseg", "model=tiny", "data=demo"]


# ----------------------------------------------------------------------------- declared


def test_every_setting_of_the_default_config_is_declared():
    assert undeclared(to_dict(RunConfig())) == []


@pytest.mark.parametrize(
    "overrides",
    [[f"task={t}", "model=tiny", "data=demo"] for t in choices("task")]
    + [["task=fgseg", f"model={m}", "data=demo"] for m in choices("model")]
    + [["task=fgseg", f"experiment={e}"] for e in choices("experiment")]
    + [["task=semseg", "debug=smoke"]],
    ids=lambda o: " ".join(o),
)
def test_every_setting_of_each_packaged_config_is_declared(overrides):
    """Every task, model and experiment YAML, composed: no leaf without a declaration."""
    assert undeclared(to_dict(load_config(overrides))) == []


def test_a_planted_undeclared_field_is_found():
    """A new field of a config dataclass, not declared, is named by its dotted path."""
    planted = dataclasses.make_dataclass(
        "Planted", [("new_knob", int, 3)], bases=(SamplerConfig,), frozen=True
    )
    cfg = RunConfig(sampler=planted())
    assert undeclared(to_dict(cfg)) == ["sampler.new_knob"]


def test_every_declaration_names_a_setting_that_exists():
    """No stale or misspelled declaration: each plain name is a leaf of the default config,
    each subtree (`x.*`) a group of it."""
    leaves = flatten(to_dict(RunConfig()))
    for s in settings.SETTINGS:
        if s.name.endswith(".*"):
            head, _, rest = s.name.removesuffix(".*").partition(".")
            group = to_dict(RunConfig())[head]
            assert rest == "" or rest in group, s.name
        else:
            assert s.name in leaves, s.name
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names))


def _numeric(tp: Any) -> bool:
    """Whether a type hint admits an int or float (bool aside), also inside a union or tuple."""
    if tp in (int, float):
        return True
    return typing.get_origin(tp) is not typing.Literal and any(
        _numeric(a) for a in typing.get_args(tp)
    )


def _numeric_leaves(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of the numeric fields of config dataclass `cls`, read from its hints."""
    out = []
    for name, tp in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(tp):
            out += _numeric_leaves(tp, f"{prefix}{name}.")
        elif _numeric(tp):
            out.append(f"{prefix}{name}")
    return out


def test_every_numeric_setting_has_a_range():
    numeric = _numeric_leaves(RunConfig)
    assert "sampler.swap.gamma" in numeric and "sampler.attention.steps" in numeric
    missing = [n for n in numeric if declaration(n).range is None]
    assert missing == []


# ----------------------------------------------------------------------------- ranges


OUT_OF_RANGE = [
    ("sampler.swap.gamma=nan", "[0, inf)"),
    ("sampler.swap.gamma=inf", "[0, inf)"),
    ("sampler.swap.gamma=-1", "[0, inf)"),
    ("sampler.attention.contrast=-3", "[0, inf)"),
    ("sampler.attention.temperature=0", "(0, inf)"),
    ("sampler.attention.temperature=-inf", "(0, inf)"),
    ("seed=-5", "[0, inf)"),
    ("model.seed=-1", "[0, inf)"),
    ("sampler.steps=0", "[1, inf)"),
    ("sampler.skip=-1", "[0, sampler.steps)"),
    ("sampler.skip=70", "[0, sampler.steps)"),
    ("sampler.resolution=100", "[8, inf), a multiple of 8"),
    ("sampler.resolution=0", "[8, inf), a multiple of 8"),
    ("prompts=0", "[1, inf)"),
    ("limit=0", "[1, inf)"),
    ("episodes=0", "[1, inf)"),
    ("sampler.batch_episodes=0", "[1, inf)"),
    ("sampler.row_budget=0", "[1, inf)"),
    ("sampler.attention.chunk_size=0", "[1, inf)"),
    ("retrieval.batch_size=0", "[1, inf)"),
    ("task.prompts=0", "[1, inf)"),
    ("task.folds=[0,-1]", "[0, inf)"),
    ("sampler.attention.steps=[-2,null]", "[0, inf)"),
    ("sampler.adain.steps=[0,nan]", "[0, inf)"),
]


@pytest.mark.parametrize("override,valid", OUT_OF_RANGE, ids=[o for o, _ in OUT_OF_RANGE])
def test_an_out_of_range_value_is_one_line_exit_2(override, valid):
    line = error_line(runner.invoke(app, ["validate", *BASE, override]))
    name = override.partition("=")[0]
    assert line.startswith(f"error: {name}=") and "out of range" in line
    assert f"must lie in {valid}." in line and f"Fix: pass {name}=<" in line


def test_in_range_edge_values_pass_through_the_cli(tmp_path):
    """The edges of each range are valid: validate exits 0 and shows them."""
    edges = [
        "sampler.steps=2",
        "sampler.skip=1",  # the largest skip below steps
        "sampler.resolution=8",
        "sampler.attention.temperature=1e-6",
        "sampler.attention.contrast=0",
        "sampler.swap.gamma=0",
        "seed=0",
        "model.seed=0",
        "prompts=1",
        "limit=1",
        "sampler.batch_episodes=1",
        "sampler.row_budget=1",
        "sampler.attention.chunk_size=1",
        "retrieval.batch_size=1",
        "sampler.attention.steps=[0,null]",
    ]
    result = runner.invoke(app, ["validate", *BASE, f"data.root={tmp_path}", *edges])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["sampler"]["skip"] == 1 and shown["sampler"]["swap"]["gamma"] == 0


def test_null_and_non_numbers_are_left_to_their_own_checks():
    tree = to_dict(RunConfig())
    tree.update(limit=None, prompts=None, episodes="frozen/episodes.jsonl")
    tree["sampler"]["row_budget"] = None
    check_values(tree)  # no error: null means the default / no limit; a path is not a number


def test_ranges_by_hand():
    """Each kind of end, checked against values worked out by hand."""
    positive = Range(low=0, low_open=True)
    assert not positive.admits(0.0, {}) and positive.admits(1e-12, {})
    assert not Range(low=0).admits(math.nan, {}) and not Range(low=0).admits(math.inf, {})
    assert Range(low=0, high=1).admits(1.0, {}) and not Range(low=0, high=1).admits(1.5, {})
    skip = Range(low=0, below="sampler.steps")
    assert skip.admits(69, {"sampler.steps": 70}) and not skip.admits(70, {"sampler.steps": 70})
    side = Range(low=8, multiple_of=8)
    assert side.admits(512, {}) and not side.admits(516, {}) and not side.admits(0, {})
    assert positive.text() == "(0, inf)" and skip.text() == "[0, sampler.steps)"
    assert Range(low=0, high=1).text() == "[0, 1]"


def test_the_first_bad_value_is_refused_from_a_plain_dict():
    with pytest.raises(ConfigError, match=r"^sampler\.swap\.gamma=nan is out of range"):
        check_values({"sampler": {"swap": {"gamma": math.nan}}})


# ----------------------------------------------------------------------------- consumers


def old_sampler_identity(sampler: SamplerConfig) -> dict[str, Any]:
    """The run key's sampler part as evaluate._sampler_identity wrote it before settings.py."""
    out = to_dict(replace(sampler, batch_episodes=1))
    out["attention"].pop("kernel", None)
    out.pop("row_budget", None)
    return out


def old_task_identity(task: TaskConfig) -> dict[str, Any]:
    """The run key's task part as evaluate._key_of wrote it before settings.py."""
    out = to_dict(task)
    out.pop("metrics", None)
    return out


@pytest.mark.parametrize(
    "overrides",
    [
        BASE,
        [
            *BASE,
            "sampler.batch_episodes=4",
            "sampler.row_budget=9",
            "sampler.attention.kernel=torch",
        ],
        [*BASE, "sampler.attention.chunk_size=64", "sampler.swap.gamma=2"],
        ["task=keypoints", "model=toy", "data=demo", "task.options.marker_radius=0.02"],
        ["task=semseg", "model=tiny", "data=demo"],
    ],
    ids=lambda o: " ".join(o),
)
def test_the_key_view_is_the_old_key_rule(overrides):
    """Same payload as before, so the same run key: existing run folders are still found."""
    cfg = load_config(overrides)
    assert settings.key_view(to_dict(cfg.sampler), "sampler") == old_sampler_identity(cfg.sampler)
    assert settings.key_view(to_dict(cfg.task), "task") == old_task_identity(cfg.task)


OLD_IGNORED_LEAVES = ("output_dir", "save_pictures", "experiment", "shard", "limit")
OLD_IGNORED_SUFFIXES = (
    "device",
    "batch_episodes",
    "row_budget",
    "batch_size",
    "cache_dir",
    "chunk_size",
    "attention.kernel",
)
NEWLY_IGNORED = {"model.memory_format", "model.compile"}
"""Speed settings the old lists missed (runs differing only in them showed them as labels)."""


def test_tables_ignore_what_does_not_change_a_number():
    """The old hand lists of report/tables.py, plus the speed settings they missed and the
    metric entries (scoring)."""
    cfg = load_config(["task=keypoints", "model=tiny", "data=demo"])
    for name in flatten(to_dict(cfg)):
        old = name.split(".")[0] in OLD_IGNORED_LEAVES or name.endswith(OLD_IGNORED_SUFFIXES)
        new = old or name in NEWLY_IGNORED or name.startswith("task.metrics.")
        assert ignored(name) == new, name
    assert not ignored("some.setting_of_an_old_run")  # unknown: may change numbers


def test_validate_names_the_settings_that_change_no_number(tmp_path):
    result = runner.invoke(app, ["validate", *BASE, f"data.root={tmp_path}"])
    assert result.exit_code == 0, result.output
    notes = {
        line.split(":")[0]: line for line in result.stdout.splitlines() if line.startswith("# ")
    }
    speed = notes["# speed"]
    for name in ("sampler.batch_episodes", "sampler.attention.kernel", "model.compile"):
        assert name in speed
    assert "sampler.swap.gamma" not in speed and "limit" in notes["# scope"]
    assert isinstance(yaml.safe_load(result.stdout), dict)  # the notes are YAML comments


def test_docs_settings_md_is_up_to_date():
    """Regenerate with: python -m sdvicl_bench.settings > docs/SETTINGS.md"""
    written = (REPO / "docs" / "SETTINGS.md").read_text(encoding="utf-8")
    assert written == settings.settings_markdown()
    for s in settings.SETTINGS:
        assert f"| `{s.name}` | {s.effect} |" in written


def test_the_summary_names_the_speed_only_settings_from_the_declarations() -> None:
    """Issue 24 item 4: the run summary reads the declarations, like the key and validate."""
    from rich.console import Console

    from sdvicl_bench.config import RunConfig, to_dict
    from sdvicl_bench.report.summary import speed_only
    from sdvicl_bench.settings import effect_of

    config = to_dict(RunConfig())
    config["sampler"]["batch_episodes"] = 8
    line = speed_only(config)
    assert "sampler.batch_episodes=8" in line and "sampler.attention.kernel=auto" in line
    names = [item.split("=")[0] for item in line.split(", ")]
    assert names and all(effect_of(n) == "speed" for n in names)
    assert "sampler.steps" not in names and "seed" not in names  # these change numbers
    assert "method.device" not in names  # SD-VICL does not use the method fields
    config["method"]["name"] = "seggpt"
    other = speed_only(config)
    assert "method.device=auto" in other and "sampler." not in other and "model." not in other
    config["method"]["name"] = "sdvicl"
    console = Console(record=True, width=300)
    from sdvicl_bench.report.summary import print_summary

    results = {
        "task": "fgseg",
        "task_version": 1,
        "n": 1,
        "metrics": {"iou": {"overall": {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 1}}},
        "baselines": {},
        "note": None,
        "config": config,
    }
    from pathlib import Path

    print_summary(results, Path("run"), console)
    text = console.export_text()
    assert "speed only" in text and "batch_episodes=8" in text
