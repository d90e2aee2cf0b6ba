"""The streaming scanner: one byte range of a JSONL file → problems and statistics for that range.

A file is read in large binary chunks and split at newlines; each line is parsed once with orjson and checked once.
Memory is bounded by the chunk size (plus the longest line), per-kind problem caps, one length histogram per
statistic, and 16 bytes per row for duplicate detection (a 64-bit hash of the line, and its number; all ranges
of one check hash with the same seed, since worker processes get a fixed PYTHONHASHSEED). Large files are cut
into byte ranges at newlines and scanned by worker processes; each range reports line numbers relative to its
start and the parent shifts them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from azft.data.tasks import CHECKERS, Row
from azft.data.tokens import TokenCounter, TokenizerSpec

BOM = b"\xef\xbb\xbf"
CHUNK_SIZE = 8 << 20
TOKEN_BATCH_CHARS = 1 << 18  # encode about this much text per batch
MAX_LABELS = 1000
MASK64 = (1 << 64) - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class ScanConfig:
    path: str
    task: str
    tokenizer: TokenizerSpec | None = None
    context_length: int | None = None
    #: what the limit is, for messages: the spec's max_seq_length when one is given, else the model's context length
    context_label: str = "the model's context length"
    cap: int = 50  # problems kept per (severity, kind)
    chunk_size: int = CHUNK_SIZE
    parallel_tokenizer: bool = True  # let the Rust tokenizer use all cores (off inside worker processes)
    stream: bool = False  # hand every problem to the sink, chunk by chunk in line order (not only the first cap)
    valid_out: str | None = None  # append the rows without errors here, byte for byte
    invalid_out: str | None = None  # append the rows with errors here, byte for byte
    problem_fd: int | None = None  # worker processes: write the streamed problems to this pipe


@dataclass
class Partial:
    """What one byte range found. Line numbers are 1-based within the range."""

    lines: int = 0
    rows: int = 0
    valid_rows: int = 0
    blank_lines: int = 0
    problems: dict[tuple[str, str], list[tuple]] = field(default_factory=dict)  # (severity, kind) -> [(line, ...)]
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    tokens: Counter = field(default_factory=Counter)
    output_tokens: Counter = field(default_factory=Counter)
    messages: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    labels_truncated: bool = False
    over_context: int = 0
    hashes: array = field(default_factory=lambda: array("Q"))
    hash_lines: array = field(default_factory=lambda: array("Q"))
    exact: bool = False


class _Collector:
    """Receives problems for the current line; keeps the first ``cap`` of each kind and counts the rest."""

    __slots__ = ("cap", "counts", "line", "problems", "row_errors", "stream")

    def __init__(self, part: Partial, cap: int, stream: list | None = None):
        self.line = 0
        self.problems = part.problems
        self.counts = part.counts
        self.cap = cap
        self.row_errors = 0
        self.stream = stream  # every problem of the current chunk, when streaming or splitting

    def emit(self, kind: str, fld: str | None, message: str, hint: str | None, severity: str) -> None:
        key = (severity, kind)
        n = self.counts.get(key, 0)
        self.counts[key] = n + 1
        if severity == "error":
            self.row_errors += 1
        if n < self.cap:
            self.problems.setdefault(key, []).append((self.line, fld, message, hint))
        if self.stream is not None:
            self.stream.append((self.line, severity, kind, fld, message, hint))


def _end_chunk(
    records: list,
    first_line: int,
    data: bytes,
    lines: list[bytes],
    head: bytes,
    tail: bytes,
    sink: Sink | None,
    splitter: _RowSplitter | None,
) -> None:
    records.sort(key=_by_line)
    if splitter is not None:
        bad = sorted({r[0] - first_line for r in records if r[1] == "error"})
        splitter.write(data, lines, head, tail, bad)
    if sink is not None and records:
        sink(records[:])
    records.clear()


def _by_line(r: tuple) -> int:
    return r[0]


def _json_error(line: bytes, exc: Exception) -> tuple[str, str, str | None]:
    """(kind, message, hint) for a line orjson rejected."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as ue:
        return (
            "invalid-utf8",
            f"invalid UTF-8 byte 0x{line[ue.start]:02x} at byte {ue.start + 1} of the line",
            "save the file as UTF-8",
        )
    if text.startswith("\ufeff"):
        return (
            "invalid-json",
            "byte-order mark in the middle of the file",
            "only the first line may start with a byte-order mark; the file was probably concatenated",
        )
    msg = str(exc)
    # orjson and json disagree on a few edge cases (e.g. lone surrogates); trust the standard library's verdict.
    try:
        _fallback_loads(line)
    except ValueError as je:
        if not isinstance(je, json.JSONDecodeError) and "surrogate" in str(je):
            return ("invalid-utf8", str(je), "escape sequences must encode real Unicode characters")
        if isinstance(je, json.JSONDecodeError):  # "Unterminated string starting at" already ends with "at"
            msg = f"{je.msg}{'' if je.msg.endswith(' at') else ' at'} column {je.colno}"
        else:
            msg = str(je)
    except RecursionError:
        msg = "JSON nested too deeply"
    else:
        msg = msg.split(": line ")[0]
    return ("invalid-json", f"not valid JSON: {msg}"[:300], "each line must hold exactly one JSON object")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _fallback_loads(line: bytes) -> Any:
    """Parse what orjson refuses but JSON allows (integers beyond 64 bits, deep nesting); raise if invalid.

    Escaped unpaired surrogates (``"\\ud800"``) parse in Python but are not Unicode text: no tokenizer or service
    accepts them, so they are rejected here too."""
    obj = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    if _has_surrogate(obj):
        raise ValueError("a string holds an unpaired surrogate escape (\\ud800-\\udfff), which is not valid text")
    return obj


def _has_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:
        v = stack.pop()
        if type(v) is str:
            if not v.isascii() and _SURROGATE.search(v):
                return True
        elif type(v) is list:
            stack.extend(v)
        elif type(v) is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
    return False


Record = tuple  # (line within the range, severity, kind, field, message, hint)
Sink = Callable[[list], None]


class _RowSplitter:
    """Appends each chunk's lines to the valid or the invalid file, byte for byte (newlines and a leading
    byte-order mark included), so the two files partition the input."""

    def __init__(self, valid: str | None, invalid: str | None):
        self.valid = open(valid, "ab", buffering=0) if valid else None
        self.invalid = open(invalid, "ab", buffering=0) if invalid else None

    def write(self, data: bytes, lines: list[bytes], head: bytes, tail: bytes, bad: list[int]) -> None:
        """``data`` = b"\n".join(lines); ``head`` goes before the first line, ``tail`` after the last; ``bad``
        holds the sorted 0-based indexes of the invalid lines."""
        valid, invalid = self.valid, self.invalid
        if not bad:
            if valid is not None:
                valid.write(head + data + tail if len(data) < 65536 else b"".join((head, data, tail)))
            return
        # Valid runs are written as slices of ``data`` (no copies); offsets come from the line lengths.
        mv = memoryview(data)
        last = len(lines) - 1
        prev = pos = 0
        for j in bad:
            if j > prev:
                end = pos + sum(map(len, lines[prev:j])) + (j - prev)  # through the newline after line j-1
                if valid is not None:
                    if prev == 0 and head:
                        valid.write(head)
                    valid.write(mv[pos:end])
                pos = end
            if invalid is not None:
                invalid.write((head if j == 0 else b"") + lines[j] + (tail if j == last else b"\n"))
            pos += len(lines[j]) + 1
            prev = j + 1
        if prev <= last and valid is not None:
            if prev == 0 and head:
                valid.write(head)
            valid.write(mv[pos:])
            valid.write(tail)

    def close(self) -> None:
        for f in (self.valid, self.invalid):
            if f is not None:
                f.close()


def fd_sink(fd: int) -> tuple[Sink, Callable[[], None]]:
    """A sink writing each record as one JSON array per line to a pipe, and its closer."""
    out = os.fdopen(fd, "wb", buffering=1 << 16)
    dumps = orjson.dumps

    def sink(records: list) -> None:
        out.write(b"".join(dumps(r) + b"\n" for r in records))

    return sink, out.close


def scan_range(cfg: ScanConfig, start: int, end: int, sink: Sink | None = None) -> Partial:
    """Scan [start, end) of cfg.path. With ``cfg.stream`` every problem goes to ``sink`` (a list of records per
    chunk, sorted by line); with ``cfg.valid_out``/``cfg.invalid_out`` every line is copied to one of them."""
    closer = None
    if sink is None and cfg.problem_fd is not None:
        sink, closer = fd_sink(cfg.problem_fd)
    splitter = _RowSplitter(cfg.valid_out, cfg.invalid_out) if (cfg.valid_out or cfg.invalid_out) else None
    try:
        return _scan(cfg, start, end, sink if cfg.stream else None, splitter)
    finally:
        if splitter is not None:
            splitter.close()
        if closer is not None:
            closer()


def _size_of(f: Any) -> int:
    return os.fstat(f.fileno()).st_size


def _without_trailing_blank_lines(data: bytes) -> bytes:
    """A file may end with one empty line (LF or CRLF: many editors write one); it is not a row. More blank lines,
    or lines of spaces, are still reported."""
    if data == b"\r":  # the empty CRLF line alone in the last chunk
        return b""
    if data.endswith(b"\n\r"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def _scan(cfg: ScanConfig, start: int, end: int, sink: Sink | None, splitter: _RowSplitter | None) -> Partial:
    scanner = _RangeScanner(cfg, sink, splitter)
    with open(cfg.path, "rb") as f:
        for data, head, tail in _chunks(f, start, end, cfg.chunk_size):
            scanner.scan_chunk(data, head, tail)
    scanner.part.lines = scanner.lineno
    return scanner.part


def _chunks(f: Any, start: int, end: int, chunk_size: int) -> Iterator[tuple[bytes, bytes, bytes]]:
    """The lines of [start, end) in chunks of about ``chunk_size``, each cut at a newline: (the lines joined by
    newlines, the byte-order mark that stood before the file's first line, what follows the last line in the
    file). Blank lines that end the file are dropped; a chunk is never empty."""
    at_eof = end >= _size_of(f)  # trailing blank lines at the end of the file are fine
    f.seek(start)
    remaining = end - start
    carry = b""
    first = start == 0
    while remaining > 0 or carry:
        buf = f.read(min(chunk_size, remaining)) if remaining > 0 else b""
        remaining -= len(buf)
        if not buf:
            remaining = 0
        data = carry + buf if carry else buf
        tail = b"\n"  # what follows the chunk's last line in the file
        if remaining > 0:
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            data = data[:cut]
        else:
            carry = b""
            if data.endswith(b"\n"):
                data = data[:-1]
            elif not data:
                return
            else:
                tail = b""
            if at_eof:
                data = _without_trailing_blank_lines(data)
                if not data:
                    return
        head = b""
        if first:
            first = False
            if data.startswith(BOM):
                data = data[3:]
                head = BOM
        yield data, head, tail


class _RangeScanner:
    """Checks the lines of one byte range chunk by chunk, gathering the range's :class:`Partial`."""

    def __init__(self, cfg: ScanConfig, sink: Sink | None, splitter: _RowSplitter | None):
        self.cfg = cfg
        self.sink = sink
        self.splitter = splitter
        self.part = part = Partial()
        self.records: list | None = [] if (sink is not None or splitter is not None) else None
        self.col = _Collector(part, cfg.cap, self.records)
        self.checker = CHECKERS[cfg.task]
        self.chat = cfg.task == "chat-completion"
        self.classify = cfg.task == "text-classification"
        self.counter: TokenCounter | None = None
        if cfg.tokenizer is not None:
            if not cfg.parallel_tokenizer:
                # only worker processes (azft.data._worker) scan with parallel_tokenizer off: the process is theirs
                os.environ["TOKENIZERS_PARALLELISM"] = "false"
            self.counter = TokenCounter(cfg.tokenizer)
            part.exact = True
        self.pending: list[tuple[int, Row]] = []  # valid rows waiting for exact token counts
        self.pending_chars = 0
        self.lineno = 0

    def scan_chunk(self, data: bytes, head: bytes, tail: bytes) -> None:
        chunk_first = self.lineno + 1
        lines = data.split(b"\n")
        self._scan_lines(lines)
        if self.counter is not None:
            self._flush()
        if self.records is not None:
            _end_chunk(self.records, chunk_first, data, lines, head, tail, self.sink, self.splitter)

    def _scan_lines(self, lines: list[bytes]) -> None:
        """The hot loop: parse and check each line once."""
        part, col = self.part, self.col
        emit = col.emit
        checker = self.checker
        loads = orjson.loads
        JSONDecodeError = orjson.JSONDecodeError
        hashes_append = part.hashes.append
        hash_lines_append = part.hash_lines.append
        lineno = self.lineno
        for line in lines:
            lineno += 1
            if not line or line.isspace():
                part.blank_lines += 1
                col.line = lineno
                emit("blank-line", None, "blank line", "delete it: every line must hold one JSON object", "error")
                continue
            part.rows += 1
            try:
                obj = loads(line)
            except JSONDecodeError as exc:
                try:
                    obj = _fallback_loads(line)
                except (ValueError, RecursionError):
                    kind, message, hint = _json_error(line, exc)
                    col.line = lineno
                    emit(kind, None, message, hint, "error")
                    continue
            col.line = lineno
            if type(obj) is not dict:
                emit(
                    "not-an-object",
                    None,
                    "the line holds a JSON "
                    + ("array" if type(obj) is list else "string" if type(obj) is str else "value")
                    + ", not an object",
                    "each line must be one JSON object {...}",
                    "error",
                )
                continue
            hashes_append(hash(line) & MASK64)
            hash_lines_append(lineno)
            col.row_errors = 0
            try:
                row = checker(obj, emit)
            except RecursionError:
                emit("invalid-json", None, "JSON nested too deeply", None, "error")
                row = None
            if row is None or col.row_errors:
                continue
            self._add_row(lineno, len(line), row)
        self.lineno = lineno

    def _add_row(self, lineno: int, n_bytes: int, row: Row) -> None:
        """Count a valid row: messages or label, and its tokens (estimated now, or exactly in the next batch)."""
        part = self.part
        part.valid_rows += 1
        if self.chat:
            part.messages[row.n_messages] += 1
        elif self.classify:
            label = row.label if type(row.label) is str else str(row.label)
            labels = part.labels
            if label in labels or len(labels) < MAX_LABELS:
                labels[label] += 1
            else:
                part.labels_truncated = True
        if self.counter is None:
            self._add_counts(lineno, row.est_total, row.est_output)
        else:
            self.pending.append((lineno, row))
            self.pending_chars += n_bytes
            if self.pending_chars >= TOKEN_BATCH_CHARS:
                self._flush()

    def _add_counts(self, line: int, total: int, out: int) -> None:
        part = self.part
        part.tokens[total] += 1
        part.output_tokens[out] += 1
        ctx = self.cfg.context_length
        if ctx is not None and total > ctx:
            part.over_context += 1
            self.col.line = line
            about = "" if part.exact else "about "
            self.col.emit(
                "too-long",
                None,
                f"{about}{total} tokens, over {self.cfg.context_label} of {ctx}",
                "training truncates the row (or drops it); shorten or split it",
                "warning",
            )

    def _flush(self) -> None:
        """Count the pending rows' tokens exactly, in one tokenizer batch."""
        pending, counter = self.pending, self.counter
        if not pending or counter is None:
            return
        if self.chat:
            results = counter.count_chat([r.chat for _, r in pending])
        else:
            results = counter.count_fields([(r.inputs, r.outputs) for _, r in pending])
        for (line, _row), res in zip(pending, results):
            if isinstance(res, str):
                self.col.line = line
                self.col.emit(
                    "template-error",
                    "messages",
                    res,
                    "fix the conversation so the model's chat template accepts it",
                    "error",
                )
                self.part.valid_rows -= 1
                continue
            self._add_counts(line, res[0], res[1])
        pending.clear()
        self.pending_chars = 0
