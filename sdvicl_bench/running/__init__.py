"""One run's parts, each with one job; `evaluate` wires them together.

- `reporter`: what a run says (warnings, the resume line, the progress bar, the summary),
  with the output settings (`quiet`, the console) in one object.
- `folder`: one run folder: its files, finding or creating it by key under the creation
  lock with this process's claim on its sample file, reading its finished samples, what is
  left to do, writing results.json.
- `loop`: episodes -> sampler -> scores -> samples.jsonl records.
- `results`: records -> results.json (metrics, baselines, versions, timing).
- `pictures`: the picture grid of a run folder.

Orchestration like `evaluate`, `protocols` and `workflows`: it may import the stage packages.
"""
