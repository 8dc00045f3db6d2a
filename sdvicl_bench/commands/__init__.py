"""The CLI's commands, by job; `sdvicl_bench.cli` gathers them into one Typer app.

common       what every command shares: the console, `user_errors` (one stderr line and
             exit 2 for a UserError, a resume hint and exit 130 for Ctrl-C), `fail`,
             the `Overrides` argument and the epilog helpers
hydra_config the only module that sees Hydra/OmegaConf: `compose`, `load_config`,
             `choices`, `split_sweeps`
experiments  run, validate, ablate, sweep, reproduce
results      tables, merge, rescore, grid, report, ls
data         data check, data prepare
"""
