"""The sampler benchmark behind scripts/bench_sampler.py, in three parts:

- `bench.measure`: the variants, the models and synthetic episodes, timing, peak memory,
  one-step agreement, the attention memory probe, and `run`, which measures everything
  and returns the record (a dict, written as JSON);
- `bench.report`: the record's machine info, the partial JSON written as rows finish,
  the final JSON, and the tables printed last;
- `bench.row`: `Row`, one measurement, which both name (so neither imports the other back).

scripts/bench_sampler.py is the command line (its flags, defaults and exit code). This
package is imported with scripts/ on sys.path (the script does that).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))
