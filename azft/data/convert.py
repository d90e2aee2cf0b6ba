"""``convert_file``: common fine-tuning data formats → Azure's chat or prompt/completion JSONL, streamed.

Sources: JSON Lines, a JSON array (read whole: the format has no row boundaries), Parquet and Arrow files, and
Hugging Face ``save_to_disk`` folders (Arrow, read through pyarrow; imported only for those). Rows are read one at a
time and written as they are converted, so memory is bounded by one batch. Rows that cannot be converted are skipped
and reported with their line (or row) number and the reason; every converted row passes the target task's check.
Nothing here touches the network.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from azft.data.formats import DESCRIPTIONS, READERS, SOURCE_FORMATS, TARGETS, Mapping, Skip, detect_format
from azft.data.scan import BOM, _fallback_loads, _json_error
from azft.data.stream import _copy
from azft.data.tasks import CHECKERS
from azft.errors import DataError, UsageError

FROM_CHOICES = SOURCE_FORMATS + ("hf-disk", "auto")
DETECT_ROWS = 20
_CHUNK = 8 << 20
_WRITE_ROWS = 4096


@dataclass
class ConvertReport:
    source: str
    reader: str  # jsonl | json-array | parquet | arrow | hf-disk
    format: str  # the row format read
    target: str
    out: str
    detected: str | None = None  # how the format was detected (None when it was given)
    rows: int = 0
    converted: int = 0
    skipped: int = 0
    skipped_counts: dict[str, int] = field(default_factory=dict)
    skipped_rows: list[dict] = field(default_factory=list)  # the first `cap` of each kind
    mapping: list[dict] = field(default_factory=list)  # [{"from", "to", "rows"}]
    notes: dict[str, int] = field(default_factory=dict)
    system_added: int = 0
    blank_lines: int = 0
    size_bytes: int = 0
    sha256: str | None = None
    files: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.skipped == 0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ok"] = self.ok
        return d


# ------------------------------------------------------------------------------------------------ sources


BLANK = object()  # a blank line (not a row)


class _Bad:
    """A row that could not be parsed (its kind and message)."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: str, message: str):
        self.kind, self.message = kind, message


@dataclass
class Source:
    path: Path
    reader: str
    unit: str  # what a location counts: line | item | row
    files: list[Path]

    def rows(self) -> Iterator[tuple[int, Any]]:
        if self.reader == "jsonl":
            return _jsonl_rows(self.path)
        if self.reader == "json-array":
            return _json_array_rows(self.path)
        return _arrow_rows(self.files)


def open_source(path: str | os.PathLike, split: str | None = None) -> Source:
    """What ``path`` is (JSONL, JSON array, Parquet, Arrow, a Hugging Face dataset folder) and the files to read."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder", hint="check the path")
    if p.is_dir():
        return Source(p, "hf-disk", "row", _hf_files(p, split))
    if not os.access(p, os.R_OK):
        raise DataError(f"{p}: permission denied")
    with open(p, "rb") as f:
        head = f.read(8)
    if p.suffix == ".parquet" or head.startswith(b"PAR1"):
        return Source(p, "parquet", "row", [p])
    if p.suffix == ".arrow" or head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return Source(p, "arrow", "row", [p])
    if split:
        raise UsageError("--split applies to Hugging Face dataset folders", hint=f"{p} is a single file")
    with open(p, "rb") as f:
        start = f.read(4096).lstrip(BOM).lstrip()
    return Source(
        p, "json-array" if start.startswith(b"[") else "jsonl", "item" if start.startswith(b"[") else "line", [p]
    )


def _hf_files(folder: Path, split: str | None) -> list[Path]:
    """The data files of a ``save_to_disk`` folder (Dataset or DatasetDict), in order."""
    dd = folder / "dataset_dict.json"
    if dd.is_file():
        try:
            splits = list(json.loads(dd.read_text())["splits"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{dd}: not a readable dataset_dict.json ({exc})") from None
        splits = [
            x for x in splits if isinstance(x, str) and x and "/" not in x and "\\" not in x and x not in (".", "..")
        ]
        chosen = split or ("train" if "train" in splits else splits[0] if len(splits) == 1 else None)
        if chosen not in splits:
            raise UsageError(
                f"{folder} holds the splits {', '.join(splits)}" + (f", not {split!r}" if split else ""),
                hint="choose one with --split",
            )
        folder = folder / chosen
    elif split:
        sub = folder / split
        if not sub.is_dir() or sub.resolve().parent != folder.resolve():
            raise UsageError(f"{folder} has no split folder {split!r}")
        folder = sub
    state = folder / "state.json"
    files: list[Path] = []
    if state.is_file():
        try:
            files = [folder / d["filename"] for d in json.loads(state.read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{state}: not a readable state.json ({exc})") from None
    if not files:
        files = (
            sorted(folder.glob("*.arrow")) or sorted(folder.glob("*.parquet")) or sorted(folder.glob("**/*.parquet"))
        )
    outside = [f for f in files if not f.resolve().is_relative_to(folder.resolve())]
    if outside:
        raise DataError(
            f"{folder}: {outside[0]} lies outside the dataset folder",
            hint="a save_to_disk folder reads only its own files",
        )
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{folder}: {missing[0].name} is listed in state.json but missing")
    if not files:
        raise DataError(
            f"{folder}: no dataset files (state.json, *.arrow or *.parquet)",
            hint="pass the folder written by Dataset.save_to_disk, or a .parquet/.arrow/.jsonl file",
        )
    return files


def _jsonl_rows(
    path: Path, start: int = 0, end: int | None = None, counter: list[int] | None = None
) -> Iterator[tuple[int, Any]]:
    """(line number within [start, end), parsed row | BLANK for a blank line | _Bad) for each line; the number of
    lines read ends up in ``counter[0]``."""
    loads = orjson.loads
    lineno = 0
    remaining = (path.stat().st_size if end is None else end) - start
    with open(path, "rb") as f:
        f.seek(start)
        carry = b""
        first = start == 0
        while True:
            buf = f.read(min(_CHUNK, remaining)) if remaining > 0 else b""
            remaining -= len(buf)
            data = carry + buf if carry else buf
            if buf:
                cut = data.rfind(b"\n")
                carry, data = (data, b"") if cut < 0 else (data[cut + 1 :], data[:cut])
            else:
                carry = b""
            if first and data:
                first = False
                if data.startswith(BOM):
                    data = data[3:]
            if data:
                for line in data.split(b"\n"):
                    lineno += 1
                    if not line or line.isspace():
                        yield lineno, BLANK
                        continue
                    try:
                        yield lineno, loads(line)
                    except orjson.JSONDecodeError as exc:
                        yield lineno, _parse_slow(line, exc)
            if not buf:
                break
    if counter is not None:
        counter[0] = lineno


def _parse_slow(line: bytes, exc: Exception) -> Any:
    try:
        return _fallback_loads(line)
    except (ValueError, RecursionError):
        kind, message, _ = _json_error(line, exc)
        return _Bad(kind, message)


def _json_array_rows(path: Path) -> Iterator[tuple[int, Any]]:
    raw = path.read_bytes()
    if raw.startswith(BOM):
        raw = raw[3:]
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc})",
            hint="a .json source must be one array of rows; JSON Lines (one row per line) converts too",
        ) from None
    if type(items) is not list:
        raise DataError(f"{path}: the JSON document is {type(items).__name__}, not an array of rows")
    for i, item in enumerate(items, 1):
        yield i, item


def _arrow_rows(files: list[Path]) -> Iterator[tuple[int, Any]]:
    n = 0
    for f in files:
        for batch in _arrow_batches(f):
            for row in batch.to_pylist():
                n += 1
                yield n, row


def _arrow_batches(path: Path) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    with open(path, "rb") as f:
        parquet = f.read(4) == b"PAR1"
    try:
        if parquet:
            yield from pq.ParquetFile(str(path)).iter_batches(batch_size=1024)
            return
        with pa.memory_map(str(path)) as src:
            try:
                yield from ipc.open_stream(src)  # what Dataset.save_to_disk writes
            except pa.ArrowInvalid:
                src.seek(0)
                reader = ipc.open_file(src)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Arrow/Parquet file ({exc})") from None


# ------------------------------------------------------------------------------------------------ detection


def detect(source: Source) -> tuple[str, str]:
    """(row format, what was seen) from the first rows of ``source``."""
    seen: Counter = Counter()
    fields: Counter = Counter()
    n = 0
    for _, obj in source.rows():
        if obj is BLANK or type(obj) is _Bad:
            continue
        n += 1
        fmt = detect_format(obj)
        if fmt:
            seen[fmt] += 1
        elif type(obj) is dict:
            fields.update(obj.keys())
        if n >= DETECT_ROWS:
            break
    if not seen:
        found = ", ".join(k for k, _ in fields.most_common(8)) or "no JSON objects"
        raise UsageError(
            f"{source.path}: could not tell the format from the first {n} rows (fields: {found})",
            hint=f"name it with --from ({', '.join(SOURCE_FORMATS)})",
        )
    fmt, count = seen.most_common(1)[0]
    how = f"{DESCRIPTIONS[fmt]} in {count} of the first {n} rows"
    others = [f"{k} in {v}" for k, v in seen.items() if k != fmt]
    if others:
        how += f" (also {', '.join(others)}: those rows will be skipped)"
    return fmt, how


# ------------------------------------------------------------------------------------------------ targets


def _chat_row(msgs: list[dict], system: str | None, m: Mapping) -> dict:
    if system is not None and (not msgs or msgs[0]["role"] != "system"):
        msgs.insert(0, {"role": "system", "content": system})
        m.row_notes.append("--system prompt added first")
    return {"messages": msgs}


def _text_row(msgs: list[dict], system: str | None, m: Mapping) -> dict:
    sys_text, rest = (msgs[0]["content"], msgs[1:]) if msgs and msgs[0]["role"] == "system" else (system, msgs)
    if len(rest) != 2 or rest[0]["role"] != "user" or rest[1]["role"] != "assistant":
        roles = ", ".join(x["role"] for x in rest)
        raise Skip(
            "multi-turn",
            f"{len(rest)} turns ({roles}): a prompt/completion row holds one user turn and its answer",
            None,
            "convert --to chat-completion to keep every turn",
        )
    prompt = rest[0]["content"]
    m.row_roles.append(("user turn", "prompt"))
    m.row_roles.append(("assistant turn", "completion"))
    if sys_text:
        prompt = f"{sys_text}\n\n{prompt}"
        m.row_notes.append("system prompt put before the prompt, separated by a blank line")
    if len(rest[1]) > 2:
        m.row_notes.append("message name/weight dropped (prompt/completion has no place for them)")
    return {"prompt": prompt, "completion": rest[1]["content"]}


def _pc_direct(obj: dict, system: str | None, m: Mapping) -> dict:
    """prompt/completion → prompt/completion: the fields as they are (a --system prompt goes before the prompt)."""
    msgs = READERS["prompt-completion"](obj, m)
    m.row_roles[-2:] = [("prompt", "prompt"), ("completion", "completion")]
    prompt = msgs[0]["content"] if system is None else f"{system}\n\n{msgs[0]['content']}"
    return {"prompt": prompt, "completion": msgs[1]["content"]}


def _plain_chat_ok(msgs: list[dict]) -> bool:
    """True when a conversation of plain role/content messages (as the readers build them: known roles, non-empty
    text) certainly passes the chat check: system only first, then a user turn first, an assistant turn last.
    False means "run the full check" (it finds the error, or accepts what this fast path does not look at)."""
    n = len(msgs)
    i = 1 if n and msgs[0]["role"] == "system" else 0
    if i >= n or msgs[i]["role"] != "user" or msgs[-1]["role"] != "assistant" or len(msgs[0]) != 2:
        return False
    for j in range(i, n):
        m = msgs[j]
        if m["role"] == "system" or len(m) != 2:
            return False
    return True


class _Gate:
    """The target task's own row check: a converted row with an error is skipped, never written."""

    def __init__(self, target: str):
        self.check = CHECKERS[target]
        self.target = target
        self.first: tuple | None = None

    def emit(self, kind: str, fld: str | None, message: str, hint: str | None, severity: str) -> None:
        if severity == "error" and self.first is None:
            self.first = (kind, fld, message, hint)

    def __call__(self, row: dict) -> None:
        if self.target == "chat-completion" and _plain_chat_ok(row["messages"]):
            return
        self.first = None
        self.check(row, self.emit)
        if self.first is not None:
            kind, fld, message, hint = self.first
            raise Skip(kind, f"the converted row fails the {self.target} check: {message}", fld, hint)


# ------------------------------------------------------------------------------------------------ conversion


def _check_paths(src: Path, out: Path) -> None:
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {out} is a directory", hint="name the .jsonl file to write")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise UsageError(f"--out {out} would overwrite the source", hint="write to another file")
    if src.is_dir() and out.resolve().is_relative_to(src.resolve()):
        raise UsageError(f"--out {out} is inside the dataset folder being read", hint="write it elsewhere")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the directory {out.parent} does not exist")


PARALLEL_MIN_BYTES = 24 << 20  # below this, worker start-up costs more than it saves


@dataclass
class _Job:
    """What a worker needs to convert one byte range of a JSONL file (picklable)."""

    path: str
    fmt: str
    target: str
    system: str | None
    roles: dict[str, str]
    out: str
    cap: int
    start: int = 0
    end: int | None = None


@dataclass
class _Part:
    """What one range produced; line numbers are relative to the range."""

    lines: int = 0
    rows: int = 0
    converted: int = 0
    blank_lines: int = 0
    skipped: int = 0
    skipped_counts: dict[str, int] = field(default_factory=dict)
    skipped_rows: list[dict] = field(default_factory=list)
    roles: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)


def convert_file(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    source_format: str = "auto",
    target: str = "chat-completion",
    system: str | None = None,
    roles: dict[str, str] | None = None,
    split: str | None = None,
    workers: int | None = None,
    cap: int = 50,
) -> ConvertReport:
    """Convert ``src`` (``source_format``: alpaca, sharegpt, prompt-completion, openai; hf-disk or auto to detect
    the rows' format) into ``target`` JSONL at ``out``. ``system`` is added first to conversations without a system
    message; ``roles`` maps more speaker names (``{"bot": "assistant"}``). Rows that cannot be converted are
    skipped and listed in the report (the first ``cap`` of each kind; all are counted). ``out`` is written under a
    temporary name and renamed when complete. Large JSON Lines files are converted by worker processes (one per
    core unless ``workers`` says otherwise), each on its own byte range."""
    started = time.perf_counter()
    if source_format not in FROM_CHOICES:
        raise UsageError(f"unknown source format {source_format!r}", hint=f"choose one of: {', '.join(FROM_CHOICES)}")
    if target not in TARGETS:
        raise UsageError(f"cannot convert to {target!r}", hint=f"choose one of: {', '.join(TARGETS)}")
    if system is not None and not system.strip():
        raise UsageError("--system is empty", hint="give the system prompt's text, or leave --system out")
    for name, role in (roles or {}).items():
        if role not in ("system", "user", "assistant"):
            raise UsageError(f"--role {name}={role}: the role must be system, user or assistant")
    source = open_source(src, split)
    out_p = Path(out)
    _check_paths(source.path, out_p)
    if source_format == "hf-disk" and source.reader not in ("hf-disk", "parquet", "arrow"):
        raise UsageError(
            f"--from hf-disk reads a dataset folder or a .parquet/.arrow file; {src} is {source.reader.upper()}",
            hint="use --from auto",
        )
    detected = None
    fmt = source_format
    if fmt in ("auto", "hf-disk"):
        fmt, detected = detect(source)
    report = ConvertReport(
        source=str(src),
        reader=source.reader,
        format=fmt,
        target=target,
        out=str(out_p),
        detected=detected,
        files=[str(f) for f in source.files] if source.reader == "hf-disk" else [],
    )
    tmp = out_p.with_name(f".{out_p.name}.{os.getpid()}.tmp")
    job = _Job(str(source.path), fmt, target, system, dict(roles or {}), str(tmp), cap)
    try:
        parts = _run(source, job, workers)
        os.replace(tmp, out_p)
    except OSError as exc:
        raise DataError(
            f"{exc.filename or out_p}: {exc.strerror or exc}",
            hint="check that the output directory is writable and the disk has room",
        ) from None
    finally:
        for t in [tmp] + [Path(f"{tmp}.{i}") for i in range(1, 64)]:
            if t.exists():
                t.unlink()
    _merge(report, parts, source.unit, cap)
    report.size_bytes = out_p.stat().st_size
    report.elapsed_s = round(time.perf_counter() - started, 4)
    return report


def _run(source: Source, job: _Job, workers: int | None) -> list[_Part]:
    size = source.path.stat().st_size if source.reader == "jsonl" else 0
    n = 1
    if source.reader == "jsonl" and size >= PARALLEL_MIN_BYTES:
        from azft.data.check import _default_workers

        n = _default_workers() if workers is None else max(1, workers)
    if n == 1:
        with open(job.out, "wb") as fh:
            return [convert_rows(source.rows(), job, fh)]
    from azft.data.check import _line_ranges

    ranges = _line_ranges(source.path, size, n)
    jobs = [
        replace(job, start=a, end=b, out=job.out if i == 0 else f"{job.out}.{i}") for i, (a, b) in enumerate(ranges)
    ]
    parts = _convert_parallel(jobs)
    with open(job.out, "ab") as dst:
        for j in jobs[1:]:
            with open(j.out, "rb") as src:
                _copy(src, dst)
            os.unlink(j.out)
    return parts


def convert_range(job: _Job) -> _Part:
    """Convert one byte range of a JSONL file into ``job.out`` (what a worker process runs)."""
    counter = [0]
    with open(job.out, "wb") as fh:
        part = convert_rows(_jsonl_rows(Path(job.path), job.start, job.end, counter), job, fh)
    part.lines = counter[0]
    return part


def _convert_parallel(jobs: list[_Job]) -> list[_Part]:
    from azft.data.stream import run_workers

    return run_workers(jobs, jobs[0].path, "conversion", ("convert",))


def _merge(report: ConvertReport, parts: list[_Part], unit: str, cap: int) -> None:
    roles: Counter = Counter()
    notes: Counter = Counter()
    offset = 0
    kept: Counter = Counter()
    for pt in parts:
        report.rows += pt.rows
        report.converted += pt.converted
        report.blank_lines += pt.blank_lines
        report.skipped += pt.skipped
        for k, v in pt.skipped_counts.items():
            report.skipped_counts[k] = report.skipped_counts.get(k, 0) + v
        for row in pt.skipped_rows:
            if kept[row["kind"]] < cap:
                kept[row["kind"]] += 1
                n = row["n"] + offset
                report.skipped_rows.append(
                    {
                        "kind": row["kind"],
                        unit: n,
                        "where": f"{unit} {n}",
                        "field": row["field"],
                        "message": row["message"],
                        "hint": row["hint"],
                    }
                )
        roles.update(pt.roles)
        notes.update(pt.notes)
        offset += pt.lines
    report.skipped_rows.sort(key=lambda r: r[unit])
    report.mapping = [{"from": a, "to": b, "count": n} for (a, b), n in roles.most_common()]
    report.notes = dict(notes.most_common())
    report.system_added = notes.get("--system prompt added first", 0)


def convert_rows(rows: Iterator[tuple[int, Any]], job: _Job, fh: Any) -> _Part:
    """Convert parsed rows, writing each converted one to ``fh``; the hot loop."""
    reader = READERS[job.fmt]
    direct = job.fmt == "prompt-completion" and job.target == "text-generation"
    build = _chat_row if job.target == "chat-completion" else _text_row
    system = job.system
    gate = _Gate(job.target)
    m = Mapping(job.roles)
    dumps = orjson.dumps
    buf: list[bytes] = []
    part = _Part()
    kept: Counter = Counter()
    unit = "n"

    def skip(n: int, kind: str, message: str, fld: str | None = None, hint: str | None = None) -> None:
        m.discard()
        part.skipped += 1
        part.skipped_counts[kind] = part.skipped_counts.get(kind, 0) + 1
        if kept[kind] < job.cap:
            kept[kind] += 1
            part.skipped_rows.append({"kind": kind, unit: n, "field": fld, "message": message, "hint": hint})

    for n, obj in rows:
        if obj is BLANK:
            part.blank_lines += 1
            continue
        part.rows += 1
        if type(obj) is _Bad:
            skip(n, obj.kind, obj.message)
            continue
        if type(obj) is not dict:
            skip(n, "not-an-object", f"the row is a JSON {type(obj).__name__}, not an object")
            continue
        try:
            row = _pc_direct(obj, system, m) if direct else build(reader(obj, m), system, m)
            gate(row)
        except Skip as e:
            skip(n, e.kind, e.message, e.field, e.hint)
            continue
        except RecursionError:
            skip(n, "invalid-json", "JSON nested too deeply")
            continue
        buf.append(dumps(row))
        m.commit()
        part.converted += 1
        if len(buf) >= _WRITE_ROWS:
            fh.write(b"\n".join(buf) + b"\n")
            buf.clear()
    if buf:
        fh.write(b"\n".join(buf) + b"\n")
    part.roles, part.notes = m.roles, m.notes
    return part
