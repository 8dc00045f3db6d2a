"""The one registry (sdvicl_bench/registry.py): register, get, names, unknown names, lazy
parts, plugins from `plugins=[...]` and from the `sdvicl_bench.plugins` entry points."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from types import SimpleNamespace

import pytest

from sdvicl_bench import registry
from sdvicl_bench.config import RunConfig, TaskConfig, from_dict
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.protocols import registry as resolvers


@pytest.fixture()
def clean(monkeypatch):
    """The registry as it is now, restored after the test (what a test registers is dropped)."""
    table = {kind: dict(entries) for kind, entries in registry._TABLE.items()}
    monkeypatch.setattr(registry, "_TABLE", table)
    monkeypatch.setattr(registry, "_LOADED_PLUGINS", set())
    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", [False])
    return table


def test_register_get_names(clean):
    marker = object()
    registry.register("metric", "zeta", marker)
    assert registry.get("metric", "zeta") is marker
    assert registry.names("metric")[-1] == "zeta" and registry.has("metric", "zeta")
    assert registry.names("decoder")[:2] == ("fgseg", "det")  # registration order


def test_an_unknown_name_is_one_line_with_did_you_mean(clean):
    with pytest.raises(ConfigError) as err:
        registry.get("dataset", "pascal5")
    line = str(err.value)
    assert "\n" not in line and "Unknown dataset 'pascal5'" in line
    assert "pascal5i, voc2012-det" in line and "Did you mean 'pascal5i'?" in line
    with pytest.raises(ConfigError, match=r"Unknown registry kind 'decodr'.*'decoder'"):
        registry.names("decodr")


def test_built_ins_are_lazy_and_importing_the_registry_is_cheap():
    code = (
        "import sys, sdvicl_bench.registry as r, sdvicl_bench.config\n"
        "heavy = [m for m in ('torch', 'numpy', 'sdvicl_bench.tasks.fgseg',"
        " 'sdvicl_bench.sampler.backbones.sd15') if m in sys.modules]\n"
        "print(heavy, r.names('backbone')[:2])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] ('sd15', 'sd21')"


def test_lazy_parts_load_once(clean):
    calls = []
    registry.register("method", "m", registry.Lazy(lambda: calls.append(1) or "built"))
    assert registry.get("method", "m") == "built" == registry.get("method", "m")
    assert calls == [1]
    registry.register("metric", "mod", "tests.plugins.inverted:decode")  # module:attr string
    from tests.plugins import inverted

    assert registry.get("metric", "mod") is inverted.decode
    registry.register(
        "aggregation", "confusion_miou", "sdvicl_bench.protocols.aggregations:AGGREGATIONS"
    )
    assert registry.get("aggregation", "confusion_miou") is resolvers.AGGREGATIONS["confusion_miou"]
    assert registry.get("backbone", "tiny").name == "tiny"  # a tuple of records: by .name


def test_options_are_declared_by_the_parts(clean):
    registry.register(
        "decoder", "shapes", "tests.plugins.inverted", options={"k": int}, ranges={"k": (0, 3)}
    )
    assert registry.options_of("decoder", "shapes") == ({"k": int}, {"k": (0, 3)})
    assert registry.options_of("decoder", "semseg")[1] == {"classes": (0, 18)}  # OPTION_RANGES
    task = TaskConfig(name="mine", dataset="pascal5i", decoder="shapes")
    resolvers.check_task_options(task, {"k": 2})
    with pytest.raises(ConfigError, match=r"task.options.k=7 is out of range.*\[0, 3\]"):
        resolvers.check_task_options(task, {"k": 7})
    with pytest.raises(ConfigError, match="task=mine has no option 'j'"):
        resolvers.check_task_options(task, {"j": 1})
    plain = TaskConfig(name="inv", dataset="pascal5i", decoder="tests.plugins.inverted")
    resolvers.check_task_options(plain, {"anything": 1})  # declares none: unchecked, as before


def test_a_plugin_module_registers_its_parts(clean, tmp_path, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(
        "from sdvicl_bench import registry\n"
        "registry.register('backbone', 'tiny-copy', registry.Lazy(lambda: 'a backbone'))\n"
        "COUNT = globals().get('COUNT', 0) + 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_plugins(["my_plugin"])
    registry.load_plugins(["my_plugin"])  # once
    assert sys.modules["my_plugin"].COUNT == 1
    assert "tiny-copy" in registry.names("backbone")
    assert from_dict(RunConfig, {"model": {"name": "tiny-copy"}}).model.name == "tiny-copy"
    assert registry.get("backbone", "tiny-copy") == "a backbone"
    with pytest.raises(ConfigError) as err:
        registry.load_plugins(["no_such_plugin_module"])
    assert "\n" not in str(err.value) and "plugin 'no_such_plugin_module'" in str(err.value)


def test_entry_points_are_loaded_once(clean, monkeypatch):
    calls = []

    def register_parts():
        calls.append(1)
        registry.register("metric", "from_entry_point", len)

    module = SimpleNamespace(name="mod", value="x", load=lambda: SimpleNamespace())  # a module
    function = SimpleNamespace(name="fn", value="pkg:fn", load=lambda: register_parts)
    asked = []

    def entry_points(**kw):
        asked.append(kw)
        return [module, function]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    registry.load_plugins([])
    registry.load_plugins([])
    assert asked == [{"group": "sdvicl_bench.plugins"}] and calls == [1]
    assert registry.get("metric", "from_entry_point") is len


def test_a_broken_entry_point_is_one_line(clean, monkeypatch):
    def fail():
        raise ImportError("No module named 'gone'")

    broken = SimpleNamespace(name="gone", value="gone:register", load=fail)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [broken])
    with pytest.raises(ConfigError, match=r"plugin entry point 'gone' .*cannot be imported"):
        registry.load_entry_points()
