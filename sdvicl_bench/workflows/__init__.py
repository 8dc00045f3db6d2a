"""Workflows that chain runs: `ablate`, `sweep` and `reproduce`.

The CLI parses a command line into override lists and hands them here with `load`, its
Hydra-backed `overrides -> RunConfig` function (the CLI stays the only module that sees
Hydra); a workflow runs configs through `evaluate` and writes its comparison tables and
grids. Nothing here prints except through the console it is given.
"""
