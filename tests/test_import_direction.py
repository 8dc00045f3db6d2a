"""Data flows one way: the stage packages do not import each other, nothing imports in a circle.

data/, sampler/, tasks/, metrics/ and report/ are stages; each may import the shared leaf
modules (config, errors, types) and itself, never another stage. Only the orchestration
layer (evaluate, protocols, workflows, sharding, rescore, cli) wires stages together. The
leaves import only each other. No modules of sdvicl_bench, nor of scripts/, import each
other in a circle (a lazy or TYPE_CHECKING import counts: it is a circle a reader follows
and a refactor trips on). The checkers read every module's imports with `ast` (also the
ones inside functions), so a lazy import cannot hide an edge; a planted back-edge, upward
import or circle must make them fail.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sdvicl_bench"
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
STAGES = ("data", "sampler", "tasks", "metrics", "report")
LEAVES = ("config", "errors", "types", "settings", "registry")


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


def copy_of_package(tmp_path: Path) -> Path:
    """sdvicl_bench's sources copied under `tmp_path`, to plant an import in."""
    copy = tmp_path / "sdvicl_bench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    return copy


def test_stage_packages_do_not_import_each_other():
    assert back_edges(PACKAGE) == []


def test_a_planted_back_edge_is_found(tmp_path):
    copy = copy_of_package(tmp_path)
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


# ----------------------------------------------------------------------------- leaves


def upward_imports(package: Path) -> list[str]:
    """`file:line leaf -> layer (module)` for every import a leaf module (config, errors,
    types) makes of a package module that is not a leaf."""
    found = []
    for leaf in LEAVES:
        path = package / f"{leaf}.py"
        for line, module in imported_modules(path):
            if layer_of(module) != "leaf":
                rel = path.relative_to(package.parent)
                found.append(f"{rel}:{line} {leaf} -> {layer_of(module)} ({module})")
    return found


def test_the_leaf_modules_import_only_each_other():
    assert upward_imports(PACKAGE) == []


def test_a_planted_upward_import_is_found(tmp_path):
    copy = copy_of_package(tmp_path)
    leaf = copy / "types.py"
    leaf.write_text(
        leaf.read_text() + "\n\ndef _late():\n    from sdvicl_bench.report import records\n"
    )
    planted = upward_imports(copy)
    assert len(planted) == 1, planted
    assert planted[0].startswith("sdvicl_bench/types.py:")
    assert planted[0].endswith("types -> report (sdvicl_bench.report.records)")


# ----------------------------------------------------------------------------- circles


def module_files(top: Path, root: Path) -> dict[str, Path]:
    """{dotted module name: file} of every .py under `top`, named relative to `root` (the
    folder on sys.path); a package is named by its `__init__.py`."""
    out = {}
    for path in sorted(top.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a `from ... import` names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _known(candidate: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of `modules` (None: outside them)."""
    parts = candidate.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the modules of `modules` it imports}. `from p import x` is an edge to the
    module p.x where x is one, else to p; the implicit import of a parent package is not."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(node, name, is_package)
                targets += [
                    f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                    for a in node.names
                ]
        known = (_known(t, modules) for t in targets)
        graph[name] = {k for k in known if k}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle: the strongly connected components (Tarjan) with more than one
    module, or one module importing itself; each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def package_cycles(package: Path) -> list[list[str]]:
    return cycles(import_graph(module_files(package, package.parent)))


def script_cycles(scripts: Path) -> list[list[str]]:
    return cycles(import_graph(module_files(scripts, scripts)))


def test_cycles_of_a_hand_made_graph():
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},  # a -> b -> c -> a
        "d": set(),
        "e": {"e"},  # itself
        "f": {"a", "g"},
        "g": {"f"},  # f <-> g, which also reaches the a-b-c circle
    }
    assert cycles(graph) == [["a", "b", "c"], ["e"], ["f", "g"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_imports_resolve_like_python(tmp_path):
    pkg = tmp_path / "bench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("ROOT = 1\n")
    (pkg / "measure.py").write_text("from .report import fmt\nfrom . import row\n")
    (pkg / "report.py").write_text("from bench.row import Row\nfrom . import ROOT\n")
    (pkg / "row.py").write_text("import os\n")
    (tmp_path / "cli.py").write_text("from bench.measure import run\n")
    graph = import_graph(module_files(tmp_path, tmp_path))
    assert graph == {
        "bench": set(),
        "bench.measure": {"bench.report", "bench.row"},
        "bench.report": {"bench.row", "bench"},
        "bench.row": set(),
        "cli": {"bench.measure"},
    }


def test_no_import_circles_in_the_package():
    assert package_cycles(PACKAGE) == []


def test_no_import_circles_in_the_scripts():
    assert script_cycles(SCRIPTS) == []


def test_a_planted_circle_is_found(tmp_path):
    copy = copy_of_package(tmp_path)
    before = package_cycles(copy)
    iou, mse = copy / "metrics" / "iou.py", copy / "metrics" / "mse.py"
    iou.write_text(iou.read_text() + "\n\ndef _late():\n    from sdvicl_bench.metrics import mse\n")
    mse.write_text("from sdvicl_bench.metrics.iou import foreground_iou\n" + mse.read_text())
    planted = [c for c in package_cycles(copy) if c not in before]
    assert planted == [["sdvicl_bench.metrics.iou", "sdvicl_bench.metrics.mse"]]

    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    report = scripts / "bench" / "report.py"
    report.write_text(report.read_text() + "\nif False:\n    from .measure import Row\n")
    assert script_cycles(scripts) == [["bench.measure", "bench.report"]]
