"""An sdvicl-bench plugin: the task `shapes` (segment the shape a prompt shows).

Importing this module registers its parts (lazily, by module path, as the packaged ones are):

    dataset  shapes  -> plugin_shapes.data:ShapesFamily   (writes its data on first use)
    decoder  shapes  -> plugin_shapes.decoder              (render_gt, decode, OPTIONS)
    metric   dice    -> plugin_shapes.metric:dice          (fn(prediction, target) -> float)

Load it with `plugins=[plugin_shapes]` (the folder holding plugin_shapes/ on PYTHONPATH or
the working directory), or through the entry-point group `sdvicl_bench.plugins`
(README.md). The task's YAML is conf/task/shapes.yaml, found through $SDVICL_CONFIG_PATH.
"""

from __future__ import annotations

from sdvicl_bench import registry


def register() -> None:
    """Register the parts of the `shapes` task (an entry point may name this function)."""
    registry.register("dataset", "shapes", "plugin_shapes.data:ShapesFamily")
    registry.register("decoder", "shapes", "plugin_shapes.decoder")
    registry.register("metric", "dice", "plugin_shapes.metric:dice")


register()
