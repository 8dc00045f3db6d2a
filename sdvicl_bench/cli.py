"""The command line: `sdvicl-bench run | validate | ablate | sweep | reproduce | tables |
merge | rescore | grid | report | ls | data`.

It only parses and prints. `commands/` holds the commands by job (`experiments`: run,
validate, ablate, sweep, reproduce; `results`: tables, merge, rescore, grid, report, ls;
`data`: data check, data prepare); this module gathers them into `app`, the console entry
point. `commands.hydra_config` is the only module that sees Hydra/OmegaConf: it composes
`conf/` with the user's overrides and turns the result into typed dataclasses
(`config.RunConfig`), handed to `evaluate` (one run), `workflows/` (ablate, sweep,
reproduce), `sharding.merge`, `rescore` or `report/`; its functions are importable from
here too (`from sdvicl_bench.cli import load_config`). Every `UserError` becomes one line
on stderr and exit code 2, never a traceback (`commands.common.user_errors`).
"""

from __future__ import annotations

import sys

import typer

from sdvicl_bench.commands import data, experiments, results
from sdvicl_bench.commands.hydra_config import (
    CONF_DIR,
    GROUPS,
    choices,
    compose,
    load_config,
    split_sweeps,
)

__all__ = [
    "CONF_DIR",
    "GROUPS",
    "app",
    "choices",
    "compose",
    "load_config",
    "main",
    "split_sweeps",
]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Visual in-context learning with Stable Diffusion (SD-VICL), as a benchmark suite.",
)
app.add_typer(experiments.app)  # nameless: run, validate, ... at the top level
app.add_typer(results.app)
app.add_typer(data.app, name="data")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
