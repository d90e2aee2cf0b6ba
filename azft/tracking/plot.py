"""Loss curves of several runs side by side (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from azft.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from azft.tracking.tracker import Tracker

# MLflow metric names used by the recipe (Hugging Face Trainer) and by Azure's fine-tuning service
TRAIN_NAMES = ("{m}", "train_{m}", "train/{m}", "training_{m}")
EVAL_NAMES = ("eval_{m}", "eval/{m}", "validation_{m}", "val_{m}", "valid_{m}")


def _first_history(tracker: "Tracker", run_id: str, names: tuple[str, ...], metric: str) -> tuple[str, list]:
    for pattern in names:
        key = pattern.format(m=metric)
        points = tracker.metric_history(run_id, key)
        if points:
            return key, points
    return "", []


def compare_plot(
    run_ids: list[str],
    out_png: str | os.PathLike[str],
    metric: str = "loss",
    *,
    tracker: "Tracker",
) -> Path:
    """Write a PNG with one ``metric`` curve per run (left) and the eval curves when any run has them (right).

    The PNG's ``Description`` text chunk lists the curves drawn (run, kind, metric key, number of points).
    """
    if not run_ids:
        raise UsageError("give at least one run to compare")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    series = []
    for ref in run_ids:
        run = tracker.get_run(ref)
        tags = run.data.tags
        label = f"{tags.get('azft.job_name') or run.info.run_name or run.info.run_id[:8]}"
        if tags.get("azft.backend"):
            label += f" ({tags['azft.backend']})"
        train_key, train = _first_history(tracker, run.info.run_id, TRAIN_NAMES, metric)
        eval_key, evals = _first_history(tracker, run.info.run_id, EVAL_NAMES, metric)
        series.append((run.info.run_id, label, train_key, train, eval_key, evals, run.data.metrics))
    if not any(s[3] or s[5] for s in series):
        available = sorted({k for s in series for k in s[6]})
        raise UsageError(
            f"none of the runs has a {metric!r} metric",
            hint=f"metrics these runs have: {', '.join(available) or 'none'}; choose one with --metric",
        )

    has_eval = any(s[5] for s in series)
    cmap = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    fig, axes = plt.subplots(1, 2 if has_eval else 1, figsize=(13 if has_eval else 7, 4.8), squeeze=False)
    curves = []
    panels = [(axes[0][0], 3, 2, f"train {metric}")]
    if has_eval:
        panels.append((axes[0][1], 5, 4, f"eval {metric}"))
    for ax, idx, key_idx, title in panels:
        for i, s in enumerate(series):
            points = s[idx]
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            ax.plot(
                steps, values, color=cmap(i % cmap.N), linewidth=2, marker="o" if len(points) == 1 else None, label=s[1]
            )
            curves.append({"run": s[0], "kind": title.split()[0], "metric": s[key_idx], "points": len(points)})
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(
        out,
        format="png",
        dpi=100,
        metadata={"Software": "azft", "Description": json.dumps({"metric": metric, "curves": curves})},
    )
    plt.close(fig)
    return out
