"""This machine's measured training speed, for local time estimates.

A local job that completes records the tokens per second its recipe measured (``metrics.json``), keyed by model,
method, device and process count, in ``<AZFT_HOME>/.azft/throughput.json``. `azft plan --backend local` divides the
training tokens by it; before any local run of that configuration the estimate uses a stated guess instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

from azft.state import read_json, state_dir, update_json

#: The guess before a measurement: tokens per second on one CPU for a 1B-parameter model, scaled by size and
#: capped (small models are bounded by per-step overhead, not arithmetic). Labelled as a guess wherever shown.
GUESS_CPU_TOKENS_PER_SECOND_AT_1B = 40.0
GUESS_CPU_CAP = 200.0


def cache_path() -> Path:
    return state_dir() / "throughput.json"


def device_of(requested: str) -> str:
    """``cuda`` when asked for or available (``auto``), else ``cpu``."""
    if requested == "cpu":
        return "cpu"
    return "cuda" if requested == "cuda" or shutil.which("nvidia-smi") else "cpu"


def key(model: str, method: str, device: str, processes: int) -> str:
    return f"{model}|{method}|{device}|{processes}p"


def measured(config: str) -> Optional[dict[str, Any]]:
    """The last measurement of this configuration: ``{tokens_per_second, job, measured_at}``, or None."""
    entry = read_json(cache_path()).get(config)
    if (
        isinstance(entry, dict)
        and isinstance(entry.get("tokens_per_second"), (int, float))
        and entry["tokens_per_second"] > 0
    ):
        return entry
    return None


def record(config: str, tokens_per_second: float, job: str, measured_at: str) -> bool:
    """Keep a completed job's measurement (once per job). True when it was written."""
    if not tokens_per_second or tokens_per_second <= 0:
        return False
    current = measured(config)
    if current and current.get("job") == job:
        return False

    def put(data: dict) -> None:
        data[config] = {"tokens_per_second": round(float(tokens_per_second), 1), "job": job, "measured_at": measured_at}

    update_json(cache_path(), put)
    return True


def guess(parameters_b: Optional[float]) -> float:
    size = parameters_b if parameters_b and parameters_b > 0 else 1.0
    return round(min(GUESS_CPU_CAP, GUESS_CPU_TOKENS_PER_SECOND_AT_1B / size), 1)


def local_speed(
    model: str, method: str, device: str, processes: int, parameters_b: Optional[float]
) -> tuple[float, str]:
    """Tokens per second for a local estimate and where the number comes from (measured here, or a guess)."""
    config = key(model, method, device, processes)
    found = measured(config)
    if found:
        return float(found["tokens_per_second"]), (
            f"measured on this machine by local job {found.get('job')} ({found.get('measured_at')}; {model}, {method}, "
            f"{device}, {processes} process(es)), cached in {cache_path()}"
        )
    return guess(parameters_b), (
        f"a guess ({GUESS_CPU_TOKENS_PER_SECOND_AT_1B:g} tokens/s per billion parameters on CPU, at most "
        f"{GUESS_CPU_CAP:g}): no local run of {model} with {method} on {device} measured yet; the first one that "
        f"completes is measured and cached in {cache_path()}"
    )
