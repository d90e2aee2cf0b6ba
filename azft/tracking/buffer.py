"""The on-disk operation log that keeps MLflow writes while the tracking server is unreachable.

Layout, one folder per tracking URI under the buffer root (default ``.azft/mlflow-buffer/``)::

    <root>/<sha256(uri)[:16]>/
        target.txt        the tracking URI (credentials removed), for people reading the folder
        journal.jsonl     pending operations, in order, one JSON object a line
        state.json        {"runs": {placeholder: real run id}, "applied": [op ids already sent]}
        blobs/<op id>/    copies of artifact files, so a buffered artifact survives its source being deleted
        .lock             inter-process lock held while appending or replaying

Every operation carries its own id and the wall-clock timestamps it was recorded with, so replaying it twice writes
the same rows: MLflow keys metric rows by (key, step, timestamp, value).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from azft.redact import redact_text

PLACEHOLDER_PREFIX = "pending-"


def new_placeholder() -> str:
    return PLACEHOLDER_PREFIX + uuid.uuid4().hex


def is_placeholder(run_id: str) -> bool:
    return run_id.startswith(PLACEHOLDER_PREFIX)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class _FileLock:
    """A blocking exclusive lock on a file (fcntl on POSIX, msvcrt on Windows) plus an in-process lock."""

    _thread_locks: dict[str, threading.RLock] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        with self._guard:
            self._tlock = self._thread_locks.setdefault(str(path), threading.RLock())
        self._depth = 0
        self._fh: Any = None

    def __enter__(self) -> "_FileLock":
        self._tlock.acquire()
        if self._depth == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a+b")
            if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
                import msvcrt

                self._fh.seek(0)
                msvcrt.locking(self._fh.fileno(), msvcrt.LK_LOCK, 1)
            else:
                import fcntl

                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            try:
                if sys.platform == "win32":  # pragma: no cover
                    import msvcrt

                    self._fh.seek(0)
                    msvcrt.locking(self._fh.fileno(), msvcrt.LK_UNLCK, 1)
                else:
                    import fcntl

                    fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None
        self._tlock.release()


class Journal:
    """Pending MLflow operations for one tracking URI."""

    def __init__(self, root: Path, tracking_uri: str):
        self.root = Path(root)
        self.dir = self.root / hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
        self.tracking_uri = tracking_uri
        self.lock = _FileLock(self.dir / ".lock")

    # -- files -----------------------------------------------------------------------------------------------
    @property
    def journal_path(self) -> Path:
        return self.dir / "journal.jsonl"

    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    def blob_dir(self, op_id: str) -> Path:
        return self.dir / "blobs" / op_id

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / "target.txt"
        if not target.exists():
            target.write_text(redact_text(self.tracking_uri) + "\n", encoding="utf-8")

    # -- state -----------------------------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            state = {}
        except json.JSONDecodeError:
            # a torn write cannot happen (atomic replace); an edited file is treated as empty but kept aside
            shutil.copy2(self.state_path, self.state_path.with_suffix(".json.bad"))
            state = {}
        state.setdefault("runs", {})
        state.setdefault("applied", [])
        return state

    def save_state(self, state: dict[str, Any]) -> None:
        self._ensure_dir()
        _atomic_write(self.state_path, json.dumps(state, indent=1, sort_keys=True))

    def resolve(self, run_ref: str) -> str | None:
        """The real run id for ``run_ref`` (itself when it is not a placeholder), None while still pending."""
        if not is_placeholder(run_ref):
            return run_ref
        return self.load_state()["runs"].get(run_ref)

    def record_run(self, placeholder: str, run_id: str) -> None:
        with self.lock:
            state = self.load_state()
            state["runs"][placeholder] = run_id
            self.save_state(state)

    # -- operations ------------------------------------------------------------------------------------------
    def pending(self) -> list[dict[str, Any]]:
        """Operations not yet applied, in the order they were recorded."""
        try:
            lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        applied = set(self.load_state()["applied"])
        ops = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                op = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash while appending: the op was never acknowledged
            if op.get("id") not in applied:
                ops.append(op)
        return ops

    def append(self, ops: list[dict[str, Any]]) -> None:
        """Persist ``ops`` (artifact sources are copied into the buffer first)."""
        with self.lock:
            self._ensure_dir()
            for op in ops:
                if op["op"] == "artifact" and "src" in op and "blob" not in op:
                    src = Path(op["src"])
                    dest = self.blob_dir(op["id"])
                    dest.mkdir(parents=True, exist_ok=True)
                    if src.is_dir():
                        shutil.copytree(src, dest / src.name, dirs_exist_ok=True)
                    else:
                        shutil.copy2(src, dest / src.name)
                    op["blob"] = str(dest / src.name)
                elif op["op"] == "artifact" and "text" in op and "blob" not in op:
                    dest = self.blob_dir(op["id"])
                    dest.mkdir(parents=True, exist_ok=True)
                    (dest / op["name"]).write_text(op.pop("text"), encoding="utf-8")
                    op["blob"] = str(dest / op["name"])
            with open(self.journal_path, "a", encoding="utf-8") as fh:
                for op in ops:
                    fh.write(json.dumps(op, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def mark_applied(self, op_id: str) -> None:
        with self.lock:
            state = self.load_state()
            state["applied"].append(op_id)
            self.save_state(state)

    def compact(self) -> None:
        """Drop applied operations and their blobs once nothing is pending (keeps the placeholder map)."""
        with self.lock:
            if self.pending():
                return
            self.journal_path.unlink(missing_ok=True)
            shutil.rmtree(self.dir / "blobs", ignore_errors=True)
            state = self.load_state()
            if state["applied"]:
                state["applied"] = []
                self.save_state(state)

    @contextmanager
    def locked(self) -> Iterator["Journal"]:
        with self.lock:
            yield self
