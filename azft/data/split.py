"""Deterministic train/validation split of a JSONL file, streamed (a check pass, then two passes; a 16-byte digest
per distinct row is all it holds)."""

from __future__ import annotations

import hashlib
import os
import random
from array import array
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


def split_file(
    path: str | os.PathLike,
    validation: float,
    seed: int = 42,
    out_dir: str | os.PathLike | None = None,
    *,
    task: str | None = None,
    force: bool = False,
    check: bool = True,
    info: dict | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.train.jsonl`` and ``<stem>.validation.jsonl``; the same file, fraction and seed always give
    the same split. About ``round(rows × validation)`` rows (at least one, at most rows - 1) go to validation; both
    files keep the original row order and bytes. Blank lines are dropped.

    ``check`` runs `azft data check`'s checks for ``task`` (None: guessed from the first rows) first and refuses a
    file with invalid rows (file, line and field of each). Exact duplicate rows stay together on one side, so no
    validation row is also a training row. Existing outputs are kept unless ``force``. ``info`` receives what was
    done (task, duplicate rows and groups)."""
    if not 0.0 < validation < 1.0:
        raise UsageError(f"the validation fraction must be between 0 and 1 (exclusive), got {validation}")
    src = open_data_file(path)
    checked_task = _check_rows(src, task) if check else task
    groups, sizes = _groups(src)
    rows = len(groups)
    if rows < 2:
        raise DataError(
            f"{src}: {rows} row{'s' if rows != 1 else ''}; a split needs at least 2",
            hint="add rows, or pass validation data as its own file",
        )
    if len(sizes) < 2:
        raise DataError(
            f"{src}: all {rows} rows are the same row; a split needs at least 2 different rows",
            hint="remove the duplicates (`azft data check` lists them)",
        )
    chosen = _validation_groups(sizes, min(rows - 1, max(1, round(rows * validation))), seed)
    out = Path(out_dir) if out_dir is not None else src.parent
    stem = src.name[: -len(".jsonl")] if src.name.endswith(".jsonl") else src.stem
    train_path, val_path = out / f"{stem}.train.jsonl", out / f"{stem}.validation.jsonl"
    if src.resolve() in (train_path.resolve(), val_path.resolve()):
        raise UsageError(f"{src} would be overwritten by its own split", hint="choose another --out-dir")
    existing = [str(p) for p in (train_path, val_path) if p.exists()]
    if existing and not force:
        raise UsageError(
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; not overwriting",
            hint="pass --force to overwrite, or choose another --out-dir",
        )
    out.mkdir(parents=True, exist_ok=True)
    _write(src, groups, chosen, train_path, val_path)
    if info is not None:
        dup = [n for n in sizes if n > 1]
        info.update({"task": checked_task, "duplicate_groups": len(dup), "duplicate_rows": sum(dup) - len(dup)})
    return train_path, val_path


def _check_rows(src: Path, task: str | None) -> str | None:
    """`azft data check`'s checks; invalid rows refuse the split with each one's file, line and field."""
    from azft.data.check import check_file

    report = check_file(src, task)
    if not report.ok:
        shown = report.errors[:20]
        more = report.error_total - len(shown)
        raise DataError(
            f"{src}: {report.error_total} problem(s) in its rows; nothing was split",
            problems=shown,
            hint=(f"{more} more not shown; " if more > 0 else "") + f"`azft data check {src}` lists "
            "every problem, and `--write-valid FILE` keeps only the valid rows",
        )
    return report.task or task


def _groups(src: Path) -> tuple[array, list[int]]:
    """Each row's group (rows with the same bytes share one) and each group's size, in order of first appearance."""
    ids: dict[bytes, int] = {}
    groups = array("I")
    sizes: list[int] = []
    for _, line in _lines(src):
        key = hashlib.blake2b(line.strip(), digest_size=16).digest()
        g = ids.setdefault(key, len(ids))
        if g == len(sizes):
            sizes.append(0)
        sizes[g] += 1
        groups.append(g)
    return groups, sizes


def _validation_groups(sizes: list[int], k: int, seed: int) -> set[int]:
    """Whole groups, in a seeded random order, until ``k`` rows; never every group (train keeps at least one)."""
    order = list(range(len(sizes)))
    random.Random(seed).shuffle(order)
    chosen: set[int] = set()
    taken = 0
    for g in order:
        if taken >= k:
            break
        if taken + sizes[g] <= k or not chosen:
            chosen.add(g)
            taken += sizes[g]
    if len(chosen) == len(sizes):  # one group larger than k was all there was room for: keep train non-empty
        chosen.discard(max(chosen, key=lambda g: sizes[g]))
    return chosen


def _write(src: Path, groups: array, chosen: set[int], train_path: Path, val_path: Path) -> None:
    tmp_t, tmp_v = train_path.with_suffix(".jsonl.tmp"), val_path.with_suffix(".jsonl.tmp")
    try:
        with open(tmp_t, "wb", buffering=_CHUNK) as ft, open(tmp_v, "wb", buffering=_CHUNK) as fv:
            for i, line in _lines(src):
                (fv if groups[i] in chosen else ft).write(line)
        os.replace(tmp_t, train_path)
        os.replace(tmp_v, val_path)
    finally:
        for t in (tmp_t, tmp_v):
            if t.exists():
                t.unlink()
