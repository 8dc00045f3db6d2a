"""Data flows one way: the stage packages do not import each other.

data/, sampler/, tasks/, metrics/ and report/ are stages; each may import the shared leaf
modules (config, errors, types) and itself, never another stage. Only the orchestration
layer (evaluate, protocols, workflows, sharding, rescore, cli) wires stages together. The
checker reads every module's imports with `ast` (also the ones inside functions), so a
lazy import cannot hide a back-edge; a planted back-edge must make it fail.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sdvicl_bench"
STAGES = ("data", "sampler", "tasks", "metrics", "report")
LEAVES = ("config", "errors", "types")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every `sdvicl_bench` import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            out += [(node.lineno, n) for n in names]
    return [(line, name) for line, name in out if name.split(".")[0] == "sdvicl_bench"]


def layer_of(module: str) -> str:
    """`sdvicl_bench.data.x` -> data; a shared leaf -> "leaf"; anything else -> "orchestrator"."""
    parts = module.split(".")
    if len(parts) < 2:
        return "orchestrator"  # `import sdvicl_bench` / `from sdvicl_bench import evaluate`
    if parts[1] in STAGES:
        return parts[1]
    return "leaf" if parts[1] in LEAVES else "orchestrator"


def back_edges(package: Path) -> list[str]:
    """`file:line stage -> layer (module)` for every import of a stage module that reaches
    another stage or the orchestration layer."""
    found = []
    for stage in STAGES:
        for path in sorted((package / stage).rglob("*.py")):
            rel = path.relative_to(package.parent)
            for line, module in imported_modules(path):
                layer = layer_of(module)
                if layer not in (stage, "leaf"):
                    found.append(f"{rel}:{line} {stage} -> {layer} ({module})")
    return found


def test_stage_packages_do_not_import_each_other():
    assert back_edges(PACKAGE) == []


def test_a_planted_back_edge_is_found(tmp_path):
    copy = tmp_path / "sdvicl_bench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    before = set(back_edges(copy))
    metrics = copy / "metrics" / "iou.py"  # a lazy import inside a function counts too
    metrics.write_text(
        metrics.read_text() + "\n\ndef _late():\n    from sdvicl_bench.report import records\n"
    )
    data = copy / "data" / "demo.py"
    data.write_text("from sdvicl_bench import evaluate\n" + data.read_text())
    planted = sorted(set(back_edges(copy)) - before)
    assert len(planted) == 2, planted
    assert planted[0].startswith("sdvicl_bench/data/demo.py:1 data -> orchestrator")
    assert planted[1].startswith("sdvicl_bench/metrics/iou.py:")
    assert "metrics -> report (sdvicl_bench.report.records)" in planted[1]
