"""Where azft keeps its local state, and the rules for writing it.

Everything lives under ``<AZFT_HOME or the current directory>/.azft/`` (``AZFT_HOME`` may start with ``~``; it is
expanded here and nowhere else):

* ``jobs/<job>/`` — local jobs; ``mock/`` — the emulated workspace; ``submissions.json`` — which backend each job
  went to; ``mlflow.db``, ``mlartifacts/``, ``mlflow-buffer/`` — the default MLflow store and its write-behind buffer.

A job name becomes a path only through :func:`job_dir`, which first checks it against Azure ML's name rules
(:func:`check_job_name`), so ``../x``, ``/etc``, or a 5,000-character name never reaches the file system.
Files that may hold anything sensitive are written with :func:`write_private` (atomic, mode 0600) and
read-modify-write sequences run under :func:`locked`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from azft.errors import UsageError

# Azure ML's name rule for jobs and other workspace resources (ARM: ``^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$``,
# Microsoft.MachineLearningServices resource types in Azure/bicep-types-az and azure-rest-api-specs).
JOB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
JOB_NAME_RULE = "1-255 characters: letters, digits, '-' and '_', starting with a letter or digit (Azure ML's name rule)"


def check_job_name(name: object) -> str:
    """Return ``name`` if it is a valid Azure ML job name; raise UsageError (exit 2) otherwise, without echoing
    more than a short, printable prefix of what was given."""
    if isinstance(name, str) and JOB_NAME_RE.fullmatch(name):
        return name
    shown = repr(name)[:60] + ("…" if len(repr(name)) > 60 else "")
    what = "too long" if isinstance(name, str) and len(name) > 255 else "not a valid job name"
    raise UsageError(f"job name {shown} is {what}", hint=f"job names are {JOB_NAME_RULE}")


def azft_home() -> Path:
    """The directory that holds ``.azft/``: ``$AZFT_HOME`` (``~`` expanded) or the current directory."""
    env = os.environ.get("AZFT_HOME")
    return (Path(env).expanduser() if env else Path.cwd()).resolve()


def state_dir() -> Path:
    return azft_home() / ".azft"


def jobs_dir(home: Optional[Path] = None) -> Path:
    return (Path(home) if home else azft_home()) / ".azft" / "jobs"


def job_dir(name: str, home: Optional[Path] = None) -> Path:
    """``.azft/jobs/<name>`` for a validated job name (never outside ``jobs/``)."""
    return jobs_dir(home) / check_job_name(name)


def mock_dir() -> Path:
    return state_dir() / "mock"


# ------------------------------------------------------------------------------------------------ safe writes

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock held across processes (``flock`` on ``<path>.lock``) and threads."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.with_name(path.name + ".lock")
    with _THREAD_LOCKS_GUARD:
        tlock = _THREAD_LOCKS.setdefault(str(lock_file), threading.Lock())
    with tlock:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``path`` atomically (temp file + rename) with mode 0600: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)


def update_json(path: Path, change: Callable[[dict], Any]) -> dict:
    """Read a JSON object, apply ``change`` to it and write it back, all under the file's lock."""
    with locked(path):
        data = read_json(path)
        change(data)
        write_private(path, json.dumps(data, indent=2, sort_keys=True))
        return data


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------------------------------------ submissions


def _index_path() -> Path:
    return state_dir() / "submissions.json"


def record_submission(job_name: str, **fields: Any) -> None:
    """Remember which backend/workspace a job went to, so `azft status JOB` works from a new shell.

    Values are redacted before they are written; the file is 0600 and updated atomically under a lock."""
    from azft.redact import redact

    check_job_name(job_name)
    clean = redact({k: v for k, v in fields.items() if v is not None})

    def change(index: dict) -> None:
        entry = index.get(job_name, {})
        entry.update(clean)
        entry.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        index[job_name] = entry

    update_json(_index_path(), change)


def lookup_submission(job_name: str) -> Optional[dict]:
    entry = read_json(_index_path()).get(job_name)
    return entry if isinstance(entry, dict) else None


def submissions() -> dict:
    return read_json(_index_path())


# ------------------------------------------------------------------------------------------------ sweeps


def sweeps_dir() -> Path:
    return state_dir() / "sweeps"


def sweep_file(name: str) -> Path:
    """``.azft/sweeps/<name>.json`` for a validated sweep name (sweep names follow the job name rule)."""
    return sweeps_dir() / f"{check_job_name(name)}.json"


def record_sweep(name: str, **fields: Any) -> dict:
    """Create or update a sweep's record (redacted, 0600, atomic, under its lock); returns the record."""
    from azft.redact import redact

    clean = redact({k: v for k, v in fields.items() if v is not None})

    def change(rec: dict) -> None:
        rec.update(clean)
        rec["name"] = name
        rec.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    return update_json(sweep_file(name), change)


def lookup_sweep(name: str) -> Optional[dict]:
    path = sweep_file(name)
    return read_json(path) if path.is_file() else None


def sweep_names() -> list[str]:
    d = sweeps_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []
