"""Data in another format, named by the spec (``data.format``): converted once, checked and uploaded as converted.

``prepare_source`` converts a local source (a file, or a Hugging Face dataset folder) into the task's JSONL under
``<AZFT_HOME>/.azft/converted/<source hash>-<format>-<task>/``, keyed by the source's content hash, so plan, validate
and submit convert a given source once and always upload the same bytes. The result names both hashes: the source's
(what the user has) and the converted file's (what is checked, uploaded and trained on).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azft.errors import AzftError, UsageError

CONVERTIBLE_TASKS = ("chat-completion", "text-generation")
CONVERSION_VERSION = 1  # part of the cache key: a change in what a conversion writes invalidates earlier ones


@dataclass
class PreparedSource:
    path: str  # the converted JSONL file: check, hash and upload this
    source_path: str
    source_sha256: str
    format: str  # the row format read (detected when the spec says auto or hf-disk)
    requested: str  # what the spec says
    detected: str | None
    report: dict  # the conversion report (ConvertReport.to_dict())

    @property
    def skipped(self) -> int:
        return int(self.report.get("skipped", 0))

    def first_skipped(self) -> str:
        rows = self.report.get("skipped_rows") or []
        if not rows:
            return ""
        r = rows[0]
        fld = f"{r['field']}: " if r.get("field") else ""
        return f"{r['where']}: {fld}{r['message']}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.source_path,
            "sha256": self.source_sha256,
            "format": self.format,
            "requested_format": self.requested,
            "detected": self.detected,
            "rows": self.report.get("rows"),
            "converted": self.report.get("converted"),
            "skipped": self.skipped,
            "skipped_counts": self.report.get("skipped_counts") or {},
            "first_skipped": self.first_skipped(),
            "mapping": self.report.get("mapping") or [],
            "notes": self.report.get("notes") or {},
        }


def source_sha256(path: str | os.PathLike) -> str:
    """The content hash of a file, or of a folder (each file's relative path and bytes, in sorted order)."""
    from azft.digest import file_sha256

    p = Path(path)
    if p.is_file():
        return file_sha256(str(p))
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f.relative_to(p).as_posix().encode() + b"\0" + file_sha256(str(f)).encode() + b"\n")
    return h.hexdigest()


def cache_root() -> Path:
    from azft.state import state_dir

    return state_dir() / "converted"


def prepare_source(path: str | os.PathLike, fmt: str, task: str, *, cache: Path | None = None) -> PreparedSource:
    """Convert ``path`` (in ``fmt``) to ``task``'s JSONL, reusing an earlier conversion of the same bytes.

    Raises :class:`UsageError` when the task has no conversion target, and the conversion's own errors (an
    undetectable format, an unreadable file); rows that cannot be converted are in the report, not raised."""
    from azft.data.convert import convert_file

    if task not in CONVERTIBLE_TASKS:
        raise UsageError(
            f"data.format converts to chat-completion or text-generation; the task is {task}",
            hint="remove data.format and give the data in the task's format",
        )
    src = Path(path)
    digest = source_sha256(src)
    folder = (cache or cache_root()) / f"{digest[:20]}-{fmt}-{task}-v{CONVERSION_VERSION}"
    stem = src.name[: -len(".jsonl")] if src.name.endswith(".jsonl") else (src.stem if src.is_file() else src.name)
    out = folder / f"{stem}.jsonl"
    meta = folder / "conversion.json"
    report = None
    if out.is_file() and meta.is_file():
        try:
            report = json.loads(meta.read_text(encoding="utf-8"))
        except ValueError:
            report = None
    if report is None:
        folder.mkdir(parents=True, exist_ok=True)
        report = convert_file(src, out, source_format=fmt, target=task).to_dict()
        tmp = meta.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, meta)
    return PreparedSource(
        path=str(out),
        source_path=str(src),
        source_sha256=digest,
        format=report["format"],
        requested=fmt,
        detected=report.get("detected"),
        report=report,
    )


def skipped_reason(ref: str, source: dict, task: str) -> str:
    """One line for a spec check: how many rows of ``ref`` could not be converted, the first, how to list all."""
    n = source["skipped"]
    kinds = ", ".join(f"{k} {v}" for k, v in (source.get("skipped_counts") or {}).items())
    first = source.get("first_skipped") or ""
    return (
        f"{ref}: {n} of {source.get('rows')} row{'s' if source.get('rows') != 1 else ''} could not be converted "
        f"from {source['format']} ({kinds}){'; first: ' + first if first else ''} (run `azft data convert {ref} "
        f"--from {source['format']} --to {task} --out FILE` to list them)"
    )


def try_prepare(path: str, fmt: str, task: str) -> tuple[PreparedSource | None, AzftError | None]:
    """prepare_source, with its error returned instead of raised (for reports that list every problem)."""
    try:
        return prepare_source(path, fmt, task), None
    except AzftError as exc:
        return None, exc
