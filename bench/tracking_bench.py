"""Cost of azft's tracking layer against plain MLflow, measured in the same run (medians).

    python bench/tracking_bench.py [--points 500] [--repeat 7]

Baseline: ``MlflowClient.log_batch`` of N metric points into a local SQLite store. Compared with it:
``Tracker.log_metrics`` of the same points (adds the idempotency read of existing steps and the pending-buffer check)
and ``Tracker.log_metrics`` while the tracking server is unreachable (the write goes to the on-disk journal).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path


def median_time(fn, repeat: int) -> float:
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    os.chdir(tempfile.mkdtemp(prefix="azft-bench-"))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from azft.tracking import Tracker

    tracker = Tracker(None, "bench", quiet=True)
    client = MlflowClient(tracker.tracking_uri)
    spec = {"model": "tiny-phi3", "method": "lora", "training": {"epochs": 1}}
    history = {"loss": [(s, 1.0 / (1 + s)) for s in range(args.points)]}

    def new_run() -> str:
        return tracker.start_submission(
            spec=spec, plan={}, data_report=None, backend="local", job_name="b", studio_url=None, tags={}
        )

    base_runs = [new_run() for _ in range(args.repeat)]
    azft_runs = [new_run() for _ in range(args.repeat)]
    ts = int(time.time() * 1000)

    def baseline(i: int) -> None:
        rows = [Metric("loss", v, ts, s) for s, v in history["loss"]]
        for j in range(0, len(rows), 1000):
            client.log_batch(base_runs[i], metrics=rows[j : j + 1000])

    def azft(i: int) -> None:
        tracker.log_metrics(azft_runs[i], history)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down_uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = Tracker(down_uri, "bench", buffer_dir=Path("down-buffer"), quiet=True, probe_timeout=0.5)

    def buffered(i: int) -> None:
        down.log_metrics(f"pending-{i}", history)

    t_base = median_time(baseline, args.repeat)
    t_azft = median_time(azft, args.repeat)
    t_buf = median_time(buffered, args.repeat)
    print(f"{args.points} metric points, median of {args.repeat}")
    print(f"  MlflowClient.log_batch (baseline)     {t_base * 1000:8.1f} ms   1.00x")
    print(f"  Tracker.log_metrics                   {t_azft * 1000:8.1f} ms   {t_azft / t_base:.2f}x")
    print(f"  Tracker.log_metrics, server down      {t_buf * 1000:8.1f} ms   {t_buf / t_base:.2f}x")


if __name__ == "__main__":
    main()
