"""Deterministic train/validation split of a JSONL file, streamed (two passes, no rows held in memory)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from azft.data.check import open_data_file
from azft.data.scan import BOM
from azft.errors import DataError, UsageError

_CHUNK = 8 << 20


def _lines(path: Path):
    """Yield (index, raw line with its newline) for every non-blank line."""
    i = 0
    with open(path, "rb", buffering=_CHUNK) as f:
        first = True
        for line in f:
            if first:
                first = False
                if line.startswith(BOM):
                    line = line[3:]
            if not line.strip():
                continue
            yield i, line if line.endswith(b"\n") else line + b"\n"
            i += 1


def split_file(path: str | os.PathLike, validation: float, seed: int = 42,
               out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.train.jsonl`` and ``<stem>.validation.jsonl``; the same file, fraction and seed always give
    the same split. ``round(rows × validation)`` rows (at least one, at most rows - 1) go to validation; both files
    keep the original row order and bytes. Blank lines are dropped."""
    if not 0.0 < validation < 1.0:
        raise UsageError(f"the validation fraction must be between 0 and 1 (exclusive), got {validation}")
    src = open_data_file(path)
    rows = sum(1 for _ in _lines(src))
    if rows < 2:
        raise DataError(f"{src}: {rows} row{'s' if rows != 1 else ''}; a split needs at least 2",
                        hint="add rows, or pass validation data as its own file")
    k = min(rows - 1, max(1, round(rows * validation)))
    chosen = set(random.Random(seed).sample(range(rows), k))
    out = Path(out_dir) if out_dir is not None else src.parent
    out.mkdir(parents=True, exist_ok=True)
    stem = src.name[:-len(".jsonl")] if src.name.endswith(".jsonl") else src.stem
    train_path, val_path = out / f"{stem}.train.jsonl", out / f"{stem}.validation.jsonl"
    if src.resolve() in (train_path.resolve(), val_path.resolve()):
        raise UsageError(f"{src} would be overwritten by its own split", hint="choose another --out-dir")
    tmp_t, tmp_v = train_path.with_suffix(".jsonl.tmp"), val_path.with_suffix(".jsonl.tmp")
    try:
        with open(tmp_t, "wb", buffering=_CHUNK) as ft, open(tmp_v, "wb", buffering=_CHUNK) as fv:
            for i, line in _lines(src):
                (fv if i in chosen else ft).write(line)
        os.replace(tmp_t, train_path)
        os.replace(tmp_v, val_path)
    finally:
        for t in (tmp_t, tmp_v):
            if t.exists():
                t.unlink()
    return train_path, val_path
