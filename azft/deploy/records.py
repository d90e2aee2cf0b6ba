"""The local record of deployments (``.azft/deployments.json``), TTLs, and the clock TTLs are judged by.

Every deployment azft makes is recorded here (name, backend, kind, URL, workspace, instance type, hourly price,
creation time, deadline); the record never holds a key (the local server's key is in its own 0600 file). The record
is what makes the guard cheap: the next azft command reads this one file and calls Azure only when a deadline has
passed. The deadline is also a tag on the Azure resource (``azft.expires_at``), so ``azft endpoints gc`` on another
machine (a CI step) finds it without this file.

The clock: ``AZFT_NOW`` (an ISO-8601 UTC time such as ``2026-12-05T08:00:00Z``, or seconds since the epoch), when set,
is "now" for every TTL decision, so a test or a rehearsal can move time without waiting; otherwise the system clock.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from azft.errors import UsageError
from azft.state import read_json, state_dir, update_json

CLOCK_ENV = "AZFT_NOW"
TAG_EXPIRES = "azft.expires_at"
TAG_TTL = "azft.ttl"
TAG_JOB = "azft.job"
TAG_CREATED = "azft.created_at"
TAG_HOURLY = "azft.hourly_usd"
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_TTL_SECONDS = 90 * 86400


def now() -> float:
    """Seconds since the epoch: ``AZFT_NOW`` when set (a controlled clock), else the system clock."""
    import os

    given = os.environ.get(CLOCK_ENV)
    if not given:
        return time.time()
    try:
        return float(given)
    except ValueError:
        pass
    try:
        return parse_time(given)
    except ValueError:
        raise UsageError(
            f"{CLOCK_ENV}={given[:40]!r} is neither an ISO-8601 time nor seconds since the epoch"
        ) from None


def parse_time(text: str) -> float:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ttl(text: str) -> float:
    """``8h``, ``30m``, ``2d``, ``1.5h`` → seconds (UsageError otherwise; at most 90 days)."""
    m = _TTL.match(text or "")
    if not m:
        raise UsageError(f"--ttl {text!r} is not a duration", hint="use a number and a unit: 30m, 8h, 2d, 1w")
    seconds = float(m[1]) * _UNIT[m[2].lower()]
    if not 60 <= seconds <= MAX_TTL_SECONDS:
        raise UsageError(f"--ttl {text!r} must be between 1 minute and 90 days")
    return seconds


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m"


@dataclass
class Deployment:
    """One deployment as azft made it."""

    name: str
    backend: str  # local | mock | maas | maap (the job's backend)
    kind: str  # local | serverless | online
    job: str
    created: float
    url: str = ""
    model: str = ""
    target: str = ""  # maas | maap (mock: which Azure path it emulates)
    expires_at: Optional[float] = None
    ttl: Optional[str] = None
    hourly_usd: float = 0.0
    price_source: str = ""
    price_is_guess: bool = False
    instance_type: Optional[str] = None
    workspace: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # how to reach the job's backend again
    pid: Optional[int] = None
    port: Optional[int] = None
    mlflow_run_id: Optional[str] = None
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None
    last_call: Optional[float] = None

    def expired(self, at: Optional[float] = None) -> bool:
        return self.expires_at is not None and (now() if at is None else at) >= self.expires_at

    def age(self, at: Optional[float] = None) -> float:
        return max(0.0, (now() if at is None else at) - self.created)

    def cost_so_far(self, at: Optional[float] = None) -> float:
        return round(self.hourly_usd * self.age(at) / 3600, 2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Deployment":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("created", "expires_at", "hourly_usd", "last_call"):  # a hand-edited file: refuse, don't crash
            value = known.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"{key} is not a number")
        if not isinstance(known.get("name"), str) or not isinstance(known.get("kind"), str):
            raise TypeError("name and kind must be strings")
        return cls(**known)


def records_path() -> Path:
    return state_dir() / "deployments.json"


def deployment_dir(name: str) -> Path:
    from azft.state import check_job_name

    return state_dir() / "deployments" / check_job_name(name)


def load_all() -> list[Deployment]:
    """Every recorded deployment (a missing file is none: one stat, no lock)."""
    path = records_path()
    if not path.is_file():
        return []
    out = []
    for d in read_json(path).values():
        if isinstance(d, dict):
            try:
                out.append(Deployment.from_dict(d))
            except TypeError:
                continue
    return sorted(out, key=lambda d: d.created)


def get(name: str) -> Optional[Deployment]:
    return next((d for d in load_all() if d.name == name), None)


def save(dep: Deployment) -> None:
    from azft.redact import redact

    clean = redact(dep.to_dict())
    update_json(records_path(), lambda data: data.__setitem__(dep.name, clean))


def forget(name: str) -> None:
    update_json(records_path(), lambda data: data.pop(name, None))


def touch(name: str, at: Optional[float] = None) -> None:
    """Remember when an endpoint was last called through azft."""

    def change(data: dict) -> None:
        if name in data:
            data[name]["last_call"] = time.time() if at is None else at

    if records_path().is_file():
        update_json(records_path(), change)
