"""Every azure-ai-ml surface azft leans on beyond the documented API, in one place, checked against the SDK
versions azft is tested with.

azure-ai-ml keeps run history (a failed job's error, its log files) behind ``jobs._runs_operations`` and the YAML
form of an entity behind ``_to_dict``. When a release moves one of them, the user gets one clear error naming the
installed version and the tested range instead of an ``AttributeError`` from deep inside a command.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any, Callable

from azft.errors import AzureError

#: The azure-ai-ml releases azft's tests run against (the lower bound is pyproject's).
TESTED_MIN = (1, 35)
TESTED_BELOW = (2, 0)
TESTED_RANGE = ">=1.35,<2"
#: Loggers azure-ai-ml and azure-core print experimental-class notices and request logs through.
SDK_LOGGERS = ("azure.ai.ml", "azure.core.pipeline.policies.http_logging_policy")


def sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("azure-ai-ml")
    except PackageNotFoundError:  # pragma: no cover - a dependency
        return "unknown"


def is_tested_version(v: str | None = None) -> bool:
    parts = []
    for piece in (v or sdk_version()).split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return TESTED_MIN <= tuple(parts) < TESTED_BELOW


def _private(what: str, get: Callable[[], Any]) -> Any:
    try:
        return get()
    except (AttributeError, ImportError):
        v = sdk_version()
        raise AzureError(
            f"azure-ai-ml {v} has no {what}, which azft uses"
            + ("" if is_tested_version(v) else f" (azft is tested with azure-ai-ml {TESTED_RANGE})"),
            hint=f"install a tested release: pip install 'azure-ai-ml{TESTED_RANGE}'",
        ) from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The SDK's 'experimental class' warnings and request logs off while the block runs; both restored after."""
    loggers = [logging.getLogger(n) for n in SDK_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def finetuning_job_class() -> type:
    """``CustomModelFineTuningJob``: the entity azft builds directly (``create_finetuning_job`` has known traps)."""
    return _private(
        "azure.ai.ml.entities.CustomModelFineTuningJob",
        lambda: __import__("azure.ai.ml.entities", fromlist=["x"]).CustomModelFineTuningJob,
    )


def run_history(ml_client: Any) -> Any:
    """The run-history operations of a workspace (``get_run``: a job's error; ``get_run_details``: its log files)."""
    return _private("jobs._runs_operations (run history)", lambda: ml_client.jobs._runs_operations)


def run_history_client(ml_client: Any) -> Any:
    """The HTTP client of the run-history service (its pipeline carries the workspace's auth and TLS settings)."""
    return _private(
        "jobs._runs_operations._operation._client (run history client)",
        lambda: ml_client.jobs._runs_operations._operation._client,
    )


def client_credential(ml_client: Any) -> Any:
    """The token credential an ``MLClient`` was built with (uploads use the same identity)."""
    return getattr(ml_client, "_credential", None)


def entity_to_dict(entity: Any) -> dict:
    """The YAML-able dict of an SDK entity: what ``load_job`` reads back and ``az ml job create -f`` accepts."""
    to_dict = _private(f"{type(entity).__name__}._to_dict", lambda: entity._to_dict)
    with quiet():
        return to_dict()
