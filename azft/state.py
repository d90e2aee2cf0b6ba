"""Where azft keeps its local state: `<AZFT_HOME or cwd>/.azft/` (jobs, submissions, MLflow store, buffers)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional


def state_dir() -> Path:
    home = Path(os.environ.get("AZFT_HOME") or Path.cwd())
    return home / ".azft"


def _index_path() -> Path:
    return state_dir() / "submissions.json"


def _read_index() -> dict:
    p = _index_path()
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def record_submission(job_name: str, **fields: Any) -> None:
    """Remember which backend/workspace a job went to, so `azft status JOB` works from a new shell."""
    p = _index_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    index = _read_index()
    entry = index.get(job_name, {})
    entry.update({k: v for k, v in fields.items() if v is not None})
    entry.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    index[job_name] = entry
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
    os.replace(tmp, p)


def lookup_submission(job_name: str) -> Optional[dict]:
    return _read_index().get(job_name)


def submissions() -> dict:
    return _read_index()
