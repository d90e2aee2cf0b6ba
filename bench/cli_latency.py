"""Cold wall time of azft's fast commands, next to `python -c "import azure.ai.ml"` measured in the same run.

    python bench/cli_latency.py [--runs 7]

Targets on a 2-core machine: `azft --help` <= 0.15 s, `azft validate` <= 0.25 s. Each command runs in a fresh
process (cold interpreter; the OS file cache is warm, as it is for a user's second command). Medians are printed,
with each command's ratio to the `import azure.ai.ml` baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def azft_cmd() -> list[str]:
    exe = shutil.which("azft", path=str(Path(sys.executable).parent)) or shutil.which("azft")
    return [exe] if exe else [sys.executable, "-m", "azft.cli"]


def timed(cmd: list[str], runs: int, cwd: str) -> tuple[float, list[float], int]:
    times = []
    rc = 0
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
        rc = p.returncode
    return statistics.median(times), times, rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    azft = azft_cmd()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AZFT_HOME"] = tmp
        cases = [
            ("baseline: python -c 'import azure.ai.ml'", [sys.executable, "-c", "import azure.ai.ml"], None),
            ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"], None),
            ("azft --help", azft + ["--help"], 0.15),
            ("azft validate examples/tiny-local.yaml", azft + ["validate", str(EXAMPLES / "tiny-local.yaml")], 0.25),
            ("azft validate --no-data", azft + ["validate", "--no-data", str(EXAMPLES / "tiny-local.yaml")], 0.25),
            ("azft catalog", azft + ["catalog"], None),
            (
                "azft plan examples/phi4-mini-maas.yaml -b maas",
                azft + ["plan", str(EXAMPLES / "phi4-mini-maas.yaml"), "--backend", "maas"],
                None,
            ),
            (
                "azft plan examples/phi3-mini.yaml -b maas (refused)",
                azft + ["plan", str(EXAMPLES / "phi3-mini.yaml"), "--backend", "maas"],
                None,
            ),
        ]
        results = []
        for label, cmd, target in cases:
            subprocess.run(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the file cache
            med, times, rc = timed(cmd, args.runs, tmp)
            results.append((label, med, min(times), max(times), rc, target))
    base = results[0][1]
    print(f"cold wall time, median of {args.runs} runs (min..max), ratio to `import azure.ai.ml`")
    print(f"{'command':58} {'median':>8} {'min..max':>15} {'ratio':>7}  target")
    for label, med, lo, hi, rc, target in results:
        verdict = ""
        if target is not None:
            verdict = f"<= {target:.2f}s {'PASS' if med <= target else 'MISS'}"
        rcs = "" if rc in (0, 2) else f" (exit {rc})"
        print(f"{label:58} {med:7.3f}s {lo:6.3f}..{hi:6.3f}s {med / base:6.2f}x  {verdict}{rcs}")


if __name__ == "__main__":
    main()
