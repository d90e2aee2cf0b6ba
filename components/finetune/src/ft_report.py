"""What the recipe reports: progress lines, metrics.jsonl / metrics.json, the loss curve, and MLflow.

MLflow is used only when ``MLFLOW_RUN_ID`` or ``MLFLOW_TRACKING_URI`` is set (Azure ML sets both; azft's local
backend passes them). Any MLflow failure is reported once as a warning and training carries on.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

#: The names the recipe's files use → the names its MLflow metrics have (azft's metric vocabulary, azft/metrics.py:
#: the recipe imports nothing from azft, so the table is here too and a test keeps both equal). One name per
#: meaning: the last per-step value is the final one, no ``final_`` copies; what the run measured is named apart from
#: the hyperparameters (``scheduled_lr`` vs the ``learning_rate`` param, ``epochs_completed`` vs ``epochs``).
MLFLOW_NAMES = {
    "loss": "train_loss",
    "final_loss": "train_loss",
    "train_loss": "train_loss_mean",  # in metrics.json: the Trainer's mean over the whole run
    "learning_rate": "scheduled_lr",
    "epoch": "epochs_completed",
    "epochs": "epochs_completed",
    "perplexity": "eval_perplexity",
    "global_step": "steps",
    "train_runtime_seconds": "train_seconds",
}


def mlflow_names(metrics: dict[str, Any]) -> dict[str, float]:
    """A record of the recipe's metrics (a metrics.jsonl line, the metrics.json summary) as MLflow metrics."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        out[MLFLOW_NAMES.get(k, k)] = float(v)
    return out


_SECRETISH = re.compile(r"(key|secret|token|password|sas|connection_string|credential)", re.I)


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_line(
    step: int,
    total: int,
    epoch: float,
    loss: float | None,
    lr: float | None,
    tps: float,
    eta: float,
    tflops: float | None = None,
    mfu: float | None = None,
) -> str:
    width = len(str(total))
    parts = [f"step {step:>{width}}/{total}", f"epoch {epoch:.2f}"]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if lr is not None:
        parts.append(f"lr {lr:.2e}")
    parts.append(f"{tps:,.0f} tok/s")
    if tflops is not None:
        parts.append(f"{tflops * 1e3:,.1f} GFLOP/s" if tflops < 1 else f"{tflops:,.1f} TFLOP/s")
    if mfu is not None:
        parts.append(f"MFU {mfu:.1%}")
    parts.append(f"ETA {fmt_duration(eta)}")
    return " | ".join(parts)


class MetricsFiles:
    """metrics.jsonl (one object per logged step), metrics.json (final summary) and loss_curve.png."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / "metrics.jsonl"

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint being resumed (they will be logged again)."""
        if not self.jsonl.exists():
            return
        keep = [r for r in self.read() if int(r.get("step", 0)) <= step]
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in keep))

    def append(self, record: dict) -> None:
        with self.jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.jsonl.exists():
            return []
        out = []
        for line in self.jsonl.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a kill
        return out

    def write_summary(self, summary: dict) -> Path:
        path = self.dir / "metrics.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
        os.replace(tmp, path)
        return path

    def plot(self, title: str = "") -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.read()
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        if train:
            ax.plot(*zip(*train), label="train loss", color="#1f77b4", linewidth=1.5)
        if evals:
            ax.plot(*zip(*evals), "o--", label="validation loss", color="#d62728")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (reply tokens)")
        ax.set_title(title or "fine-tuning loss")
        ax.grid(alpha=0.3)
        if train or evals:
            ax.legend()
        fig.tight_layout()
        path = self.dir / "loss_curve.png"
        fig.savefig(path)
        plt.close(fig)
        return path


def redact_params(params: dict[str, Any]) -> dict[str, str]:
    """Flatten to MLflow params: at most 200, values at most 500 chars, nothing secret-looking."""
    out: dict[str, str] = {}
    for k, v in params.items():
        if _SECRETISH.search(k) and k not in ("lora_target_modules",):
            continue
        s = v if isinstance(v, str) else json.dumps(v)
        if "sig=" in s or "AccountKey=" in s or s.startswith("eyJ"):
            continue
        out[k] = s[:500]
        if len(out) >= 200:
            break
    return out


class MlflowLogger:
    """Logs into the run named by the environment; never raises."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and bool(os.environ.get("MLFLOW_RUN_ID") or os.environ.get("MLFLOW_TRACKING_URI"))
        # fail fast rather than retry for minutes when the tracking server is down; MLflow reads these only from the
        # environment, and the training job's process is the recipe's own (a value the job sets is kept)
        if self.enabled:
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        self._warned = False
        self._mlflow = None
        self._started = False

    def _warn(self, what: str, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            print(
                f"warning: MLflow {what} failed ({type(exc).__name__}: {str(exc)[:200]}); training continues "
                "without MLflow and every metric stays in metrics.jsonl",
                file=sys.stderr,
                flush=True,
            )
        # A tracking server that failed once would stall every later step in its retries: stop calling it.
        self.enabled = False

    def _call(self, what: str, fn, *a, **kw):
        if not self.enabled:
            return None
        try:
            if self._mlflow is None:
                import mlflow

                self._mlflow = mlflow
            if not self._started:
                run_id = os.environ.get("MLFLOW_RUN_ID")
                if self._mlflow.active_run() is None:
                    self._mlflow.start_run(run_id=run_id or None)
                self._started = True
            return fn(self._mlflow, *a, **kw)
        except Exception as e:
            self._warn(what, e)
            return None

    def log_params(self, params: dict[str, Any]) -> None:
        def go(mlflow, p):
            client = mlflow.tracking.MlflowClient()
            run = mlflow.active_run()
            existing = client.get_run(run.info.run_id).data.params
            fresh = {k: v for k, v in p.items() if k not in existing}
            if fresh:
                mlflow.log_params(fresh)

        self._call("log_params", go, redact_params(params))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        clean = mlflow_names(metrics)
        if clean:
            # asynchronous: a slow tracking store must not slow the training steps down
            self._call("log_metrics", lambda m: m.log_metrics(clean, step=step, synchronous=False))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        p = Path(path)
        if not p.exists():
            return
        if p.is_dir():
            self._call("log_artifacts", lambda m: m.log_artifacts(str(p), artifact_path=artifact_path))
        else:
            self._call("log_artifact", lambda m: m.log_artifact(str(p), artifact_path=artifact_path))

    def set_tags(self, tags: dict[str, str]) -> None:
        self._call("set_tags", lambda m: m.set_tags(tags))

    def end(self, status: str = "FINISHED") -> None:
        if self.enabled and self._started and self._mlflow is not None:
            try:
                self._mlflow.flush_async_logging()
                self._mlflow.end_run(status=status)
            except Exception as e:
                self._warn("end_run", e)


class Rate(NamedTuple):
    tokens_per_second: float
    flops_per_second: float
    seconds_per_step: float


class Throughput:
    """Tokens and model FLOPs per second over the last few logged intervals, and the average step time for the ETA.

    ``tokens`` and ``flops`` are the counters' values when the meter starts (not zero after a resume).
    """

    def __init__(self, window: int = 10, tokens: float = 0, flops: float = 0):
        from collections import deque

        self.window: deque = deque(maxlen=window)
        self.t0 = time.monotonic()
        self.last_t = self.t0
        self.last_tokens, self.last_flops = tokens, flops
        self.first_step: int | None = None

    def update(self, step: int, tokens: float, flops: float = 0.0) -> Rate:
        now = time.monotonic()
        if self.first_step is None:
            self.first_step = step - 1
            self.t0 = self.last_t
        self.window.append((now - self.last_t, tokens - self.last_tokens, flops - self.last_flops))
        self.last_t, self.last_tokens, self.last_flops = now, tokens, flops
        dt = max(sum(w[0] for w in self.window), 1e-9)
        per_step = (now - self.t0) / max(step - self.first_step, 1)
        return Rate(sum(w[1] for w in self.window) / dt, sum(w[2] for w in self.window) / dt, per_step)
