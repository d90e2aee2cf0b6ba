"""A 100-trial sweep submitted in one process next to 100 separate `azft submit` processes, in the same run, both to
the mock backend (the real maas code against the emulator), each in a fresh AZFT_HOME with its own MLflow store.

Prints for each: wall time, requests the emulated workspace received (from its per-job request logs), data files
uploaded and bytes (the sweep: what its trials uploaded; the processes: what landed in the datastore, as each
later process finds the file there); for the sweep also the most trials in flight at once against max_concurrent. Targets: the sweep
≥ 10× faster, exactly one upload per distinct data file, in flight ≤ max_concurrent.

    python bench/sweep_submit.py [--trials 100] [--processes 100] [--max-concurrent 8]

``--processes`` below ``--trials`` times that many separate submits and scales their total to ``--trials`` (the
ratio line says so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _spec(train: Path, trials: int, max_concurrent: int) -> dict:
    rates = [round(1e-5 * (i + 1), 7) for i in range(10)]
    sizes = list(range(1, (trials + 9) // 10 + 1))
    return {
        "name": "bench",
        "model": "phi-4-mini-instruct",
        "data": {"train": str(train)},
        "mock": {"seconds_per_state": 600},
        "sweep": {
            "parameters": {"hyperparameters.learning_rate": rates, "hyperparameters.batch_size": sizes},
            "max_trials": trials,
            "max_concurrent": max_concurrent,
        },
    }


def _requests(home: Path) -> int:
    return sum(len(json.loads(p.read_text())) for p in (home / ".azft" / "mock" / "jobs").glob("*/requests.json"))


def _datastore(home: Path) -> tuple[int, int]:
    """Files in the emulated workspace's datastore and their bytes (content-addressed: one per distinct file)."""
    files = [p for p in (home / ".azft" / "mock" / "datastore").rglob("azft/data/*/*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _env(home: Path) -> dict:
    env = {**os.environ, "AZFT_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_sweep(work: Path, spec: dict) -> dict:
    home = work / "sweep-home"
    home.mkdir()
    path = home / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "azft", "submit", str(path), "--backend", "mock", "--output", "json"],
        cwd=home,
        env=_env(home),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"sweep submit failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    return {
        "wall_s": wall,
        "jobs": out["submitted"],
        "requests": _requests(home),
        "files_uploaded": out["files_uploaded"],
        "bytes_uploaded": out["bytes_uploaded"],
        "max_in_flight": out["max_in_flight"],
        "datastore": _datastore(home),
    }


def run_processes(work: Path, spec: dict, count: int) -> dict:
    """The trials as separate specs, one `azft submit` process each (table output: the upload lines are parsed)."""
    sys.path.insert(0, str(ROOT))
    from azft.spec import parse_spec_text
    from azft.sweep import expand

    home = work / "process-home"
    home.mkdir()
    trials = expand(parse_spec_text(yaml.safe_dump(spec)), "mock")[:count]
    t = time.perf_counter()
    for trial in trials:
        path = home / f"trial-{trial.index}.yaml"
        doc = trial.spec.model_dump(mode="json", exclude_none=True)
        path.write_text(yaml.safe_dump(doc))
        proc = subprocess.run(
            [sys.executable, "-m", "azft", "submit", str(path), "--backend", "mock"],
            cwd=home,
            env=_env(home),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"submit of trial {trial.index} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    wall = time.perf_counter() - t
    files, size = _datastore(home)
    return {
        "wall_s": wall,
        "jobs": len(trials),
        "requests": _requests(home),
        "files_uploaded": files,
        "bytes_uploaded": size,
        "datastore": (files, size),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--processes", type=int, default=None, help="separate submits to time (default: --trials)")
    ap.add_argument("--max-concurrent", type=int, default=8)
    args = ap.parse_args()
    count = args.processes or args.trials

    work = Path(tempfile.mkdtemp(prefix="azft-sweep-bench-"))
    train = work / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(2000)
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = _spec(train, args.trials, args.max_concurrent)

    sweep = run_sweep(work, spec)
    procs = run_processes(work, spec, count)
    scale = args.trials / procs["jobs"]
    print(f"data: 1 file, {train.stat().st_size} bytes; {args.trials} trials, max_concurrent {args.max_concurrent}")
    print(f"{'':28}{'wall s':>9}{'jobs':>6}{'requests':>10}{'uploads':>9}{'bytes':>10}  (datastore files)")
    print(
        f"{'sweep, one process':28}{sweep['wall_s']:9.1f}{sweep['jobs']:6}{sweep['requests']:10}"
        f"{sweep['files_uploaded']:9}{sweep['bytes_uploaded']:10}  ({sweep['datastore'][0]})"
    )
    print(
        f"{f'{count} azft submit processes':28}{procs['wall_s']:9.1f}{procs['jobs']:6}{procs['requests']:10}"
        f"{procs['files_uploaded']:9}{procs['bytes_uploaded']:10}  ({procs['datastore'][0]}; content-addressed, "
        "later processes find it)"
    )
    baseline = procs["wall_s"] * scale
    note = f" ({count} processes scaled ×{scale:g} to {args.trials})" if scale != 1 else ""
    print(f"speed-up: {baseline / sweep['wall_s']:.1f}× (target ≥ 10×){note}")
    print(f"uploads per distinct data file: sweep {sweep['files_uploaded']} (target exactly 1)")
    print(f"most trials in flight: {sweep['max_in_flight']} (max_concurrent {args.max_concurrent})")


if __name__ == "__main__":
    main()
