"""MLflow tracking for every backend: one run per submission, metrics whatever the backend, comparisons.

Importing this package does not import MLflow; that happens on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

from azft.redact import redact, redact_text
from azft.tracking.tracker import Tracker, default_tracking_uri, normalize_status

__all__ = [
    "Tracker",
    "compare_plot",
    "default_tracking_uri",
    "find_run_for_job",
    "normalize_status",
    "redact",
    "redact_text",
]


def compare_plot(
    run_ids: list[str], out_png: str | os.PathLike[str], metric: str = "loss", *, tracking_uri: str | None = None
) -> Path:
    """One curve per run (plus eval curves when present) in a PNG; see :func:`azft.tracking.plot.compare_plot`."""
    return Tracker(tracking_uri, "azft").compare_plot(run_ids, out_png, metric=metric)


def find_run_for_job(job_name: str, *, tracking_uri: str | None = None) -> str | None:
    """The MLflow run id recorded for an azft job name, or None."""
    return Tracker(tracking_uri, "azft").find_run_for_job(job_name)
