"""Memory estimate vs measured peak over the calibration grid (docs/memory.md).

    python bench/memory_estimate.py [--quick] [--json out.json]

Each row trains a small Phi-3 configuration with the recipe for two optimizer steps and measures the second: on a
GPU torch.cuda.max_memory_allocated, on CPU the peak of the allocator's profiler events plus the state alive at the
step's start. It prints estimate, measurement and their ratio (estimate ÷ measured, 1.00 = exact) for the whole
step and for what changes during it (activations, logits, gradients), and the worst error over the grid. Runs
unchanged on a GPU (the cases then train in bf16 with the recipe's GPU layout).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azft.memory import ERROR_BOUND
from azft.memory_calibration import GRID, QUICK, measure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the test suite's smaller grid")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    cases = QUICK if args.quick else GRID
    rows = []
    print(
        f"{'case':38s} {'estimate MB':>11s} {'measured MB':>11s} {'ratio':>6s} {'error':>7s} "
        f"{'dyn est':>8s} {'dyn meas':>8s} {'dyn err':>8s} {'s':>5s}"
    )
    for case in cases:
        t0 = time.monotonic()
        r = measure(case)
        rows.append(r.to_dict())
        print(
            f"{case.label():38s} {r.estimate_bytes / 1e6:11.3f} {r.measured_bytes / 1e6:11.3f} "
            f"{r.estimate_bytes / r.measured_bytes:6.3f} {r.error:+7.1%} {r.estimate_dynamic / 1e6:8.3f} "
            f"{r.measured_dynamic / 1e6:8.3f} {r.dynamic_error:+8.1%} {time.monotonic() - t0:5.1f}",
            flush=True,
        )
    worst = max(rows, key=lambda x: abs(x["error"]))
    worst_dyn = max(rows, key=lambda x: abs(x["dynamic_error"]))
    print(
        f"device {rows[0]['device']} · {len(rows)} cases · worst error {worst['error']:+.1%} ({worst['case']}) · "
        f"worst step-dynamic error {worst_dyn['dynamic_error']:+.1%} ({worst_dyn['case']}) · documented bound "
        f"±{ERROR_BOUND:.0%}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if abs(worst["error"]) <= ERROR_BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
