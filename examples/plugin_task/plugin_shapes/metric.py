"""The `dice` metric of the `shapes` task: 2|P and T| / (|P| + |T|) of two bool masks."""

from __future__ import annotations

import numpy as np


def dice(prediction: np.ndarray, target: np.ndarray) -> float:
    """Dice coefficient of two bool masks of one shape; 1.0 when both are empty."""
    p, t = np.asarray(prediction, dtype=bool), np.asarray(target, dtype=bool)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total
