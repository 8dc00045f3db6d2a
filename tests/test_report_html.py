"""The HTML report (`report.html.write_report`) of two demo runs of fgseg that differ in
`sampler.adain.enabled`, read back with the standard library's HTML parser: the tables
carry results.json's numbers as the tables format them, every episode of both runs is in
the embedded JSON with its scores, every picture link resolves under the report folder, and
nothing points at the network."""

from __future__ import annotations

import io
import json
import math
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sdvicl_bench import evaluate
from sdvicl_bench.cli import app
from sdvicl_bench.errors import DataError
from sdvicl_bench.report import html as report_html
from sdvicl_bench.report import records, tables
from sdvicl_bench.report.formatting import printed_cells
from sdvicl_bench.report.html import write_report

RUNS = (
    ("task=fgseg", "debug=smoke", "limit=4"),
    ("task=fgseg", "debug=smoke", "limit=4", "sampler.adain.enabled=false"),
)
"""Two variants on the same episodes (tiny model, 3 steps, 64 px, demo data)."""


# ---------------------------------------------------------------------------------------
# Shared with test_report_browser.py


def make_report(base: Path) -> tuple[Path, list[Path], Path]:
    """(work folder, run folders, out/index.html) of the demo report under `base`, made once
    per pytest session (a later call finds it; the two test modules share it)."""
    work, out = base / "work", base / "report"
    done = base / "runs.json"
    if not done.is_file():
        work.mkdir(parents=True, exist_ok=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(work)
            run_dirs = [_run(args) for args in RUNS]
        done.write_text(json.dumps([str(d) for d in run_dirs]))
    run_dirs = [Path(d) for d in json.loads(done.read_text())]
    index = out / "index.html"
    if not index.is_file():
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(work)  # the runs' data root (data/demo) is relative to it
            write_report(run_dirs, out, quiet=True, protocol_of=evaluate.protocol_of)
    return work, run_dirs, index


def _run(args: tuple[str, ...]) -> Path:
    result = CliRunner().invoke(app, ["run", *args, "--quiet"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return Path.cwd() / result.output.strip().splitlines()[-1]


def report_base(tmp_path_factory) -> Path:
    """The session's folder for the demo report (shared by both report test modules)."""
    return tmp_path_factory.getbasetemp() / "html-report-demo"


class Page(HTMLParser):
    """index.html as the tests read it: tables (rows of cells, with the row's and cells'
    attributes), img/script/link/a elements, the embedded JSON and SVG labels."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []  # {"attrs", "rows": [{"attrs", "cells": [(attrs, text)]}]}
        self.elements: list[tuple[str, dict]] = []
        self.data_blob = ""
        self._stack: list[dict] = []
        self._cell: list | None = None
        self._in_data = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a))
        if tag == "table":
            self._stack.append({"attrs": a, "rows": []})
        elif tag == "tr" and self._stack:
            self._stack[-1]["rows"].append({"attrs": a, "cells": []})
        elif tag in ("td", "th") and self._stack and self._stack[-1]["rows"]:
            self._cell = [a, ""]
            self._stack[-1]["rows"][-1]["cells"].append(self._cell)
        elif tag == "script" and a.get("id") == "report-data":
            self._in_data = True

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            self.tables.append(self._stack.pop())
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "script":
            self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data_blob += data
        elif self._cell is not None:
            self._cell[1] += data

    def tables_of(self, css: str) -> list[dict]:
        return [t for t in self.tables if css in (t["attrs"].get("class") or "").split()]

    def data(self) -> dict:
        return json.loads(self.data_blob)


def picture_links(data: dict) -> list[str]:
    """Every picture path in the page's episode data."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value.startswith(report_html.IMG_DIR + "/"):
            found.append(value)

    walk(data)
    return found


def variant_of(text: str) -> str:
    """Which demo run a row or label names: "True" / "False" (sampler.adain.enabled)."""
    return "False" if "sampler.adain.enabled=False" in text else "True"


# ---------------------------------------------------------------------------------------
# Tests


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    work, run_dirs, index = make_report(report_base(tmp_path_factory))
    text = index.read_text(encoding="utf-8")
    return work, run_dirs, index, text, Page(text)


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _variant(run_dir: Path) -> str:
    enabled = _results(run_dir)["config"]["sampler"]["adain"]["enabled"]
    return str(bool(enabled))


@pytest.mark.slow
def test_tables_carry_results_json_numbers(report):
    _, run_dirs, _, _, page = report
    wide = page.tables_of("wide")
    assert len(wide) == 1
    ours = [r for r in wide[0]["rows"] if r["attrs"].get("class", "").startswith("src-ours")]
    assert {variant_of(r["attrs"]["data-method"]) for r in ours} == {"True", "False"}
    for run_dir in run_dirs:
        results = _results(run_dir)
        row = next(r for r in ours if variant_of(r["attrs"]["data-method"]) == _variant(run_dir))
        cells = row["cells"]
        for metric, block in results["metrics"].items():
            scale = results["config"]["task"]["metrics"][metric]["scale"]
            i = next(k for k, c in enumerate(cells) if c[0].get("data-metric") == metric)
            value = tables.format_number(scale * tables.mean_of_folds(block), scale)
            assert cells[i][1] == value
            overall = block["overall"]
            if "low" in overall:  # per-episode metrics: the 95% interval beside
                low = tables.format_number(scale * overall["low"], scale)
                high = tables.format_number(scale * overall["high"], scale)
                assert cells[i + 1][1] == f"[{low}, {high}]"
    # the long table is tables.md's, row for row (its task column aside)
    df = tables.build_table(tables.load_runs(run_dirs))
    expected = [cells[1:] for cells in printed_cells(df)]
    long_rows = [[c[1] for c in r["cells"]] for r in page.tables_of("long")[0]["rows"][1:]]
    assert long_rows == expected
    # the references are beside the runs
    refs = [r for r in wide[0]["rows"] if "src-reference" in r["attrs"].get("class", "")]
    assert refs and len(refs) == int((df["source"] == "reference").sum())


@pytest.mark.slow
def test_breakdowns_per_fold_and_per_class(report):
    _, run_dirs, _, _, page = report
    folds, classes = page.tables_of("folds"), page.tables_of("classes")
    assert len(folds) == 1 and len(classes) == 1
    header = [c[1] for c in classes[0]["rows"][0]["cells"]]
    for run_dir in run_dirs:
        results = _results(run_dir)
        block = results["metrics"]["class_miou"]
        assert set(block["per_class"]) <= set(header)
        texts = [[c[1] for c in r["cells"]] for r in classes[0]["rows"][1:]]
        rows = [t for t in texts if t[1] == "result" and t[2] == "class_miou"]
        shown = {tuple(t[3:]) for t in rows}
        want = tuple(
            tables.format_number(100 * block["per_class"].get(h, math.nan), 100) for h in header[3:]
        )
        assert want in shown
        fold_header = [c[1] for c in folds[0]["rows"][0]["cells"]]
        assert fold_header[3:5] == ["fold 0", "mean of folds"]


@pytest.mark.slow
def test_every_episode_with_its_scores_and_pictures(report):
    _, run_dirs, index, _, page = report
    data = page.data()
    assert [t["task"] for t in data["tasks"]] == ["fgseg"]
    task = data["tasks"][0]
    folders = [r["folder"] for r in task["runs"]]
    assert sorted(folders) == sorted(d.name for d in run_dirs)
    by_id = {e["id"]: e for e in task["episodes"]}
    for run_dir in run_dirs:
        i = folders.index(run_dir.name)
        samples = records.read_run_samples(run_dir)
        assert len(samples) == 4
        for s in samples:
            cell = by_id[s["id"]]["r"][i]
            assert cell["s"] == pytest.approx(s["scores"], rel=1e-5)
            for name, scores in s["baselines"].items():
                assert cell["b"][name] == pytest.approx(scores, rel=1e-5, abs=1e-12)
            assert cell["pred"] and cell["dec"]
    for e in task["episodes"]:
        assert e["c"] and e["gt"] and e["group"] == "0"
        assert e["class"] in ("aeroplane", "bird")
        assert all(p["a"] and p["b"] for p in e["prompts"])
    out = index.parent.resolve()
    links = picture_links(data)
    assert len(links) >= 4 * (2 * 2 + 4)  # per episode: pred, dec per run; A, B, C, GT
    for link in links:
        path = (out / link).resolve()
        assert path.is_file() and path.is_relative_to(out), link


@pytest.mark.slow
def test_self_contained_and_plots(report):
    _, _, _, text, page = report
    assert "http://" not in text and "https://" not in text
    assert not [
        a
        for tag, a in page.elements
        if tag in ("script", "img", "link") and (a.get("src") or a.get("href"))
    ]  # nothing loaded from a file but the JSON
    labels = [a.get("aria-label", "") for tag, a in page.elements if tag == "svg"]
    assert sum("histogram" in x for x in labels) == 2  # one per run (iou)
    assert any("value and 95% CI" in x for x in labels)
    assert not any("against n prompts" in x for x in labels)  # both runs: n = 1


@pytest.mark.slow
def test_second_report_reuses_thumbnails(report, tmp_path):
    work, run_dirs, index, _, _ = report
    img = index.parent / report_html.IMG_DIR
    before = {p: p.stat().st_mtime_ns for p in img.rglob("*.*") if p.name != "sources.json"}
    cwd = os.getcwd()
    os.chdir(work)
    try:
        again = write_report(run_dirs, index.parent, quiet=True, protocol_of=evaluate.protocol_of)
    finally:
        os.chdir(cwd)
    after = {p: p.stat().st_mtime_ns for p in img.rglob("*.*") if p.name != "sources.json"}
    assert again == index and after == before


@pytest.mark.slow
def test_prompts_curve_where_runs_differ_in_prompts(report):
    _, run_dirs, _, _, _ = report
    first = tables.load_runs([run_dirs[0]])[0]
    more = json.loads(json.dumps(first))
    more["config"]["prompts"] = 3
    more["run_dir"] = first["run_dir"] + "-n3"
    svg = report_html.prompts_curve([first, more], tables.build_table([first, more]))
    assert "against n prompts" in svg and "n=1" in svg and "n=3" in svg
    assert report_html.prompts_curve([first], tables.build_table([first])) == ""


@pytest.mark.slow
def test_without_the_data_set_the_page_is_still_made(report, tmp_path):
    _, run_dirs, _, _, _ = report

    def no_data(run_dir):
        raise DataError(f"Data root not found for {run_dir.name}. Fix: pass data.root=...")

    log = io.StringIO()
    index = write_report(
        run_dirs, tmp_path / "out", protocol_of=no_data, console=Console(file=log, width=300)
    )
    lines = [x for x in log.getvalue().splitlines() if x.startswith("warning:")]
    assert len(lines) == 2 and all("Data root not found" in x for x in lines)
    page = Page(index.read_text(encoding="utf-8"))
    episodes = page.data()["tasks"][0]["episodes"]
    assert all(e["gt"] and e["c"] is None for e in episodes)
    assert all(c["pred"] and c["dec"] is None for e in episodes for c in e["r"])
    assert (
        sum(
            "Data root not found" in c[1]
            for t in page.tables
            for r in t["rows"]
            for c in r["cells"]
        )
        == 0
    )  # said above the tables, not in them
    assert index.read_text().count('class="warn"') == 2


def test_not_a_run_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "missing", tmp_path / "empty"):
        with pytest.raises(DataError) as err:
            write_report([path], tmp_path / "out", quiet=True)
        assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_cli_writes_the_page_and_names_it(tmp_path_factory, monkeypatch):
    work, run_dirs, _ = make_report(report_base(tmp_path_factory))
    monkeypatch.chdir(work)
    out = work / "cli-report"
    result = CliRunner().invoke(app, ["report", *map(str, run_dirs), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out / "index.html")
    assert (out / "index.html").is_file() and any((out / "img").iterdir())
    missing = CliRunner().invoke(app, ["report", str(work / "nope"), "--out", str(out)])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
