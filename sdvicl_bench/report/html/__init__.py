"""One self-contained static HTML page of run folders (`sdvicl-bench report`).

`write_report(run_dirs, out)` writes `out/index.html` and the thumbnails it shows under
`out/img/`; the folder opens from disk (file://), with no server and nothing fetched from the
network. The page holds, per task:

- the result table of `tables.build_table` (runs side by side, their baselines, the
  references and the oracle ceiling, with 95% intervals), as one row per method with a
  column per metric, and the full long table (as tables.md) below it;
- a dot-and-whisker plot of each metric's values and intervals;
- per-fold and per-class breakdowns where results.json has `per_fold` / `per_class` blocks;
- a histogram of each run's per-episode scores, and an n = 1/3/5 curve where the task's
  runs differ in prompts;
- an episode browser: one row per episode with A | B | C | prediction | decoded | GT
  thumbnails per run and every score and baseline; sorted by any score, or by the
  difference of two runs on the same episode, filtered by fold/group, class and id, 50 rows
  a page. The episodes are one JSON blob in the page; the page's own JavaScript (in
  `report_template.html`) sorts, filters and pages it, and reads its state from the URL hash
  (`index.html#sort=iou@r1-r2&dir=asc&fold=0`).

This package is a report stage: it reads run folders and never imports the orchestration
layer. A, B and C come from the dataset and the decoded prediction from the task's decoder;
for those the caller passes `protocol_of` (the CLI: `evaluate.protocol_of`), which gives a
run folder's `(config, protocol)`. Without it (or where the data set is not on this machine)
those columns stay empty and the page says why.

Thumbnails are cached: `out/img/sources.json` remembers what each one was made from, so a
second report into the same folder only makes the pictures that are new or changed.

The package: `writer` (`write_report`, the run labels, the progress bar), `episodes` (the
browser's data of a task), `thumbs` (the thumbnail cache), `page` (the template filled in
with the task sections), `results` (the runs, results and breakdown tables), `plots` (the
inline SVG plots) and `common` (the thumbnail folder, run colours and escaping they share).
"""

from sdvicl_bench.report.html.common import COLORS, IMG_DIR
from sdvicl_bench.report.html.episodes import DIGITS, ProtocolOf, RunSource, collect_task
from sdvicl_bench.report.html.page import PAGE_SIZE, TEMPLATE, render_page, render_task
from sdvicl_bench.report.html.plots import (
    BINS,
    SOURCE_COLORS,
    forest_plot,
    histograms,
    prompts_curve,
    render_plots,
)
from sdvicl_bench.report.html.results import (
    render_breakdowns,
    render_long_table,
    render_runs,
    render_wide_table,
)
from sdvicl_bench.report.html.thumbs import SOURCES, Thumbs, file_source, safe_name
from sdvicl_bench.report.html.writer import TILE, run_labels, write_report

__all__ = [
    "BINS",
    "COLORS",
    "DIGITS",
    "IMG_DIR",
    "PAGE_SIZE",
    "SOURCES",
    "SOURCE_COLORS",
    "TEMPLATE",
    "TILE",
    "ProtocolOf",
    "RunSource",
    "Thumbs",
    "collect_task",
    "file_source",
    "forest_plot",
    "histograms",
    "prompts_curve",
    "render_breakdowns",
    "render_long_table",
    "render_page",
    "render_plots",
    "render_runs",
    "render_task",
    "render_wide_table",
    "run_labels",
    "safe_name",
    "write_report",
]
