"""The HTML report in a real headless browser (Debian's `chromium`; skipped without one).

Chromium's `--dump-dom` gives the DOM after the page's scripts ran (`--virtual-time-budget`
lets them and the first pictures finish), `--screenshot` a PNG. The page reads the browser's
state from the URL hash (`#sort=iou@r1&dir=asc`), so a sort is one load of the page: the
test loads it with two orders and compares the episode ids of the rendered rows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdvicl_bench.report import records, tables
from tests.test_report_html import Page, make_report, report_base

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BUDGET_MS = 5000


def browser() -> str | None:
    """The first headless-capable browser on PATH."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        browser() is None,
        reason="no chromium, chromium-browser or google-chrome on PATH "
        "(Debian: apt-get install chromium)",
    ),
]


def chrome(index: Path, hash_: str, profile: Path, *extra: str) -> str:
    """Run the browser headless on `index.html#hash_`; its stdout."""
    command = [
        browser(),
        "--headless",
        "--no-sandbox",  # root in containers
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={BUDGET_MS}",
        "--window-size=1400,2000",
        *extra,
        f"{index.resolve().as_uri()}{hash_}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rendered(index: Path, hash_: str, profile: Path) -> Page:
    """The DOM after the page's scripts ran."""
    dom = chrome(index, hash_, profile, "--dump-dom")
    assert "<tbody>" in dom or "<tbody" in dom, dom[:500]
    return Page(dom)


def row_ids(page: Page) -> list[str]:
    """Episode ids of the browser's rendered rows, top to bottom."""
    return [a["data-id"] for tag, a in page.elements if tag == "tr" and "data-id" in a]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    _, run_dirs, index = make_report(report_base(tmp_path_factory))
    return run_dirs, index, tmp_path_factory.mktemp("chromium-profile")


def _runs_in_page_order(index: Path, run_dirs: list[Path]) -> list[Path]:
    data = Page(index.read_text(encoding="utf-8")).data()
    folders = [r["folder"] for r in data["tasks"][0]["runs"]]
    return sorted(run_dirs, key=lambda d: folders.index(d.name))


def test_sorting_by_a_score_and_by_a_difference(report):
    run_dirs, index, profile = report
    r1, r2 = _runs_in_page_order(index, run_dirs)
    iou1 = {s["id"]: s["scores"]["iou"] for s in records.read_run_samples(r1)}
    iou2 = {s["id"]: s["scores"]["iou"] for s in records.read_run_samples(r2)}
    up = row_ids(rendered(index, "#sort=iou@r1&dir=asc", profile))
    down = row_ids(rendered(index, "#sort=iou@r1&dir=desc", profile))
    assert up == sorted(iou1, key=iou1.get)
    assert down == up[::-1] and up != down
    diff = row_ids(rendered(index, "#sort=iou@r1-r2&dir=asc", profile))
    assert diff == sorted(iou1, key=lambda i: iou1[i] - iou2[i])


def test_rendered_page_shows_numbers_and_pictures(report):
    run_dirs, index, profile = report
    page = rendered(index, "#sort=id&dir=asc", profile)
    out = index.parent.resolve()
    imgs = [a for tag, a in page.elements if tag == "img" and a.get("src")]
    # 4 episodes x (A, B, C, GT, 2 runs x (prediction, decoded))
    assert len(imgs) >= 4 * 8
    for a in imgs:
        path = (out / a["src"]).resolve()
        assert path.is_file() and path.is_relative_to(out), a["src"]
    assert not [a for a in imgs if a.get("data-broken")]
    assert [a for a in imgs if a.get("data-loaded") == "1"]  # the browser drew pictures
    # the results table and the browser's own summary carry results.json's means
    texts = [c[1] for t in page.tables for r in t["rows"] for c in r["cells"]]
    for run_dir in run_dirs:
        results = json.loads((run_dir / "results.json").read_text())
        mean = tables.format_number(100 * results["metrics"]["iou"]["overall"]["mean"], 100)
        assert mean in texts
        assert any(t.startswith(f"mean iou {mean} over 4") for t in texts), texts


def test_screenshot_is_not_blank(report, tmp_path):
    _, index, profile = report
    shot = tmp_path / "report.png"
    chrome(index, "", profile, f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 100 and pixels.std() > 10  # text, tables and plots, not blank
    assert len(np.unique(pixels)) > 50
