"""``check_file``: every problem in a training data file, with line numbers, before anything is uploaded."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from azft.data.report import DataProblem, DataReport, DataStats, TokenStats
from azft.data.scan import BOM, Partial, ScanConfig, scan_range
from azft.data.stream import ProblemStream, SplitOutputs, run_workers, scan_parallel_streaming
from azft.data.tasks import detect_task, normalize_task
from azft.data.tokens import TokenizerLoad, TokenizerSpec, load_tokenizer, resolve_model, spec_from_object, verified
from azft.errors import DataError, Problem, UsageError

MAAS_MAX_FILE_BYTES = 512 * 1024 * 1024  # serverless fine-tuning: each file under 512 MB
MIN_ROWS_WARNING = 10
PARALLEL_MIN_BYTES = 24 << 20  # below this, worker start-up costs more than it saves
PARALLEL_MIN_BYTES_EXACT = 4 << 20
_SNIFF = 8192


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def open_data_file(path: str | os.PathLike) -> Path:
    """The file as a Path, or a DataError that says what is wrong with the path."""
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"{p}: no such file",
            problems=[Problem("no such file", file=str(p))],
            hint="check the path (relative paths are relative to the current directory)",
        )
    if p.is_dir():
        raise DataError(
            f"{p} is a directory, not a data file",
            problems=[Problem("is a directory", file=str(p))],
            hint="name the .jsonl file inside it",
        )
    if not os.access(p, os.R_OK):
        raise DataError(f"{p}: permission denied", problems=[Problem("permission denied", file=str(p))])
    return p


def _line_ranges(path: Path, size: int, parts: int) -> list[tuple[int, int]]:
    """Cut [0, size) into ``parts`` ranges that each start right after a newline."""
    cuts = [0]
    with open(path, "rb") as f:
        for i in range(1, parts):
            pos = size * i // parts
            if pos <= cuts[-1]:
                continue
            f.seek(pos - 1)
            f.readline()  # finish the line that pos-1 is in
            nxt = f.tell()
            if nxt >= size:
                break
            if nxt > cuts[-1]:
                cuts.append(nxt)
    cuts.append(size)
    return list(zip(cuts, cuts[1:]))


def _resolve_tokenizer(tokenizer: Any, model_hub_id: str | None) -> TokenizerLoad:
    if tokenizer is None and model_hub_id is None:
        return load_tokenizer(None)
    if tokenizer is None:
        return load_tokenizer(model_hub_id)
    if isinstance(tokenizer, TokenizerSpec):
        return verified(TokenizerLoad(tokenizer, f"tokenizer {tokenizer.name}"), tokenizer.name)
    if isinstance(tokenizer, (str, os.PathLike)):
        return load_tokenizer(tokenizer)
    spec = spec_from_object(tokenizer)
    return verified(TokenizerLoad(spec, f"tokenizer {spec.name}"), spec.name)


def _sniff_task(path: Path) -> str | None:
    import orjson

    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if i >= 50:
                break
            if i == 0 and line.startswith(BOM):
                line = line[3:]
            try:
                task = detect_task(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
            if task:
                return task
    return None


def check_file(
    path: str | os.PathLike,
    task: str | None = "chat-completion",
    *,
    model: str | None = None,
    backend: str | None = None,
    tokenizer: Any = None,
    epochs: int = 1,
    max_tokens: int | None = None,
    workers: int | None = None,
    cap: int = 50,
    on_problem: Callable[[DataProblem], None] | None = None,
    write_valid: str | os.PathLike | None = None,
    write_invalid: str | os.PathLike | None = None,
) -> DataReport:
    """Check one JSONL data file for ``task`` and gather its statistics.

    ``model`` (a catalog id) gives the context length and the tokenizer to look for; ``tokenizer`` (a local
    directory, hub id, ``tiny-phi3``, a fast tokenizer object or a TokenizerSpec) overrides the latter and
    ``max_tokens`` the former. ``backend="maas"`` adds the serverless 512 MB file limit. ``task=None`` guesses the
    task from the first rows. Raises :class:`DataError` when the path is missing or a directory and
    :class:`UsageError` for an unknown task or model; every problem inside the file is in the report.

    The report keeps the first ``cap`` problems of each kind. ``on_problem`` receives every problem as it is
    found (in line order; duplicates and file-level problems after the scan), in bounded memory.
    ``write_valid``/``write_invalid`` receive byte-for-byte copies of the rows without/with errors (together they
    partition the file), and ``<write_invalid>.problems.jsonl`` the line number and problems of each invalid row.
    """
    outputs = None
    if write_valid is not None or write_invalid is not None:
        outputs = SplitOutputs(open_data_file(path), write_valid, write_invalid)
    stream = None
    if on_problem is not None or outputs is not None:
        stream = ProblemStream(str(path), on_problem, outputs.problems_file if outputs else None)
    try:
        report = _check_file(
            path,
            task,
            model=model,
            backend=backend,
            tokenizer=tokenizer,
            epochs=epochs,
            max_tokens=max_tokens,
            workers=workers,
            cap=cap,
            stream=stream,
            outputs=outputs,
        )
        if stream is not None:
            stream.close_rows()
        if outputs is not None:
            invalid = stream.invalid_rows if stream is not None else 0
            if not outputs.done:  # refused as a whole (empty, UTF-16, binary): no line scan
                outputs.whole_file_invalid(Path(path))
                outputs.finish(1)
                invalid = report.stats.lines if report.stats else 0
            report.outputs = outputs.summary(report.stats.lines if report.stats else 0, invalid)
    finally:
        if stream is not None:
            stream.close_rows()
        if outputs is not None:
            outputs.cleanup()
    return report


def _check_file(
    path: str | os.PathLike,
    task: str | None,
    *,
    model: str | None,
    backend: str | None,
    tokenizer: Any,
    epochs: int,
    max_tokens: int | None,
    workers: int | None,
    cap: int,
    stream: ProblemStream | None,
    outputs: SplitOutputs | None,
) -> DataReport:
    started = time.perf_counter()
    p = open_data_file(path)
    fname = str(path)
    if epochs < 1:
        raise UsageError(f"epochs must be at least 1, got {epochs}")
    if max_tokens is not None and max_tokens < 1:
        raise UsageError(f"the context length must be positive, got {max_tokens}")
    info = resolve_model(model, max_tokens)
    context_length = info.context_length if info else max_tokens
    size = p.stat().st_size
    if task is None:
        task = (_sniff_task(p) if size else None) or "chat-completion"
    task = normalize_task(task)

    report = DataReport(path=fname, task=task)
    stats = DataStats(task=task, size_bytes=size, context_length=context_length, epochs=epochs)
    report.stats = stats
    file_problem = _FileProblems(report, fname, stream)
    if backend == "maas" and size >= MAAS_MAX_FILE_BYTES:
        file_problem(
            "file-too-large",
            f"{size / 2**20:.0f} MB is over the 512 MB limit of serverless fine-tuning",
            "split the data, or train on a compute cluster (backend maap)",
        )
    if _refused_whole(p, size, stats, file_problem):
        stats.elapsed_s = time.perf_counter() - started
        return report

    tok = _resolve_tokenizer(tokenizer, info.hub_id if info else None)
    stats.tokenizer = tok.note
    if tok.spec is not None and tok.spec.chat_template is None and task == "chat-completion":
        stats.tokenizer += " (no chat template in the tokenizer: Phi-3's template is applied)"
    cfg = ScanConfig(
        path=str(p),
        task=task,
        tokenizer=tok.spec,
        context_length=context_length,
        cap=cap,
        context_label="max_seq_length" if max_tokens is not None else "the model's context length",
    )
    parts = _scan_file(cfg, p, size, workers, stats, stream, outputs)
    _merge(report, stats, parts, fname, cap, stream)
    if stats.rows and stats.rows < MIN_ROWS_WARNING:
        file_problem(
            "few-rows",
            f"only {stats.rows} rows",
            "fine-tuning usually needs at least 10 examples, and far more for a noticeable effect",
            "warning",
        )
    stats.elapsed_s = round(time.perf_counter() - started, 4)
    return report


class _FileProblems:
    """Records a problem of the whole file (no line, or the line the file-level check found) in the report, and
    hands it to the problem stream."""

    def __init__(self, report: DataReport, fname: str, stream: ProblemStream | None):
        self.report, self.fname, self.stream = report, fname, stream

    def __call__(
        self, kind: str, message: str, hint: str | None = None, severity: str = "error", line: int | None = None
    ) -> None:
        report = self.report
        report.add(DataProblem(message, file=self.fname, line=line, hint=hint, severity=severity, kind=kind))
        if self.stream is not None:
            self.stream.problem(report.errors[-1] if severity == "error" else report.warnings[-1])


def _refused_whole(p: Path, size: int, stats: DataStats, file_problem: _FileProblems) -> bool:
    """Whether the file is refused before any line is read: empty, UTF-16, binary, or lines ended by CR alone."""
    if size == 0:
        file_problem("empty-file", "the file is empty", "a training file needs at least one row")
        return True
    with open(p, "rb") as f:
        head = f.read(_SNIFF)
    stats.has_bom = head.startswith(BOM)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        file_problem(
            "invalid-utf8",
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark)",
            "save it as UTF-8; a UTF-8 byte-order mark is fine",
        )
        return True
    if b"\x00" in head:
        nul = head.index(b"\x00")
        line = head.count(b"\n", 0, nul) + 1
        file_problem(
            "binary-file",
            f"binary data (a NUL byte on line {line}, byte offset {nul}), not a JSONL text file",
            "the file may be compressed (.gz, .zip) or in another format (parquet, arrow): "
            "export it as JSON Lines, one object per line",
            line=line,
        )
        return True
    body = head.rstrip(b"\n")
    if b"\n" not in body and b"\r" in body.rstrip(b"\r"):  # lines broken by CR alone
        file_problem(
            "cr-line-endings",
            "the lines end with CR only (classic Mac OS line endings), not LF or CRLF",
            "convert the line endings to LF, e.g. `tr '\\r' '\\n' < in.jsonl > out.jsonl`",
        )
        return True
    return False


def _scan_file(
    cfg: ScanConfig,
    p: Path,
    size: int,
    workers: int | None,
    stats: DataStats,
    stream: ProblemStream | None,
    outputs: SplitOutputs | None,
) -> list[Partial]:
    """Scan the whole file: in worker processes, one byte range each, when it is large enough to pay for them."""
    n = _default_workers() if workers is None else max(1, workers)
    threshold = PARALLEL_MIN_BYTES_EXACT if cfg.tokenizer is not None else PARALLEL_MIN_BYTES
    if size < threshold:
        n = 1
    ranges = _line_ranges(p, size, n) if n > 1 else [(0, size)]
    stats.workers = len(ranges)
    if stream is not None or outputs is not None:
        return _scan_streaming(cfg, ranges, stream, outputs)
    if len(ranges) == 1:
        return [scan_range(cfg, 0, size)]
    return _scan_parallel(cfg, ranges)


def _scan_streaming(
    cfg: ScanConfig, ranges: list[tuple[int, int]], stream: ProblemStream | None, outputs: SplitOutputs | None
) -> list[Partial]:
    cfg = replace(cfg, stream=stream is not None)
    cfgs = [outputs.config(cfg, i) if outputs else cfg for i in range(len(ranges))]
    if len(ranges) == 1:
        parts = [scan_range(cfgs[0], *ranges[0], sink=stream.records if stream else None)]
    else:
        parts = scan_parallel_streaming(cfgs, ranges, stream)
    if stream is not None:
        stream.close_rows()
    if outputs is not None:
        outputs.finish(len(ranges))
    return parts


def _scan_parallel(cfg: ScanConfig, ranges: list[tuple[int, int]]) -> list[Partial]:
    """Scan each range in its own worker process (see azft.data._worker) and return the parts in file order."""
    return run_workers([(cfg, start, end) for start, end in ranges], cfg.path, "data-check")


def _merge(
    report: DataReport,
    stats: DataStats,
    parts: list[Partial],
    fname: str,
    cap: int,
    stream: ProblemStream | None = None,
) -> None:
    tokens: Counter = Counter()
    out_tokens: Counter = Counter()
    messages: Counter = Counter()
    labels: Counter = Counter()
    problems: dict[tuple[str, str], list[DataProblem]] = {}
    counts: dict[tuple[str, str], int] = {}
    offset = 0
    exact = bool(parts) and all(pt.exact for pt in parts)
    for pt in parts:
        stats.rows += pt.rows
        stats.valid_rows += pt.valid_rows
        stats.blank_lines += pt.blank_lines
        stats.over_context_rows += pt.over_context
        stats.labels_truncated |= pt.labels_truncated
        tokens.update(pt.tokens)
        out_tokens.update(pt.output_tokens)
        messages.update(pt.messages)
        labels.update(pt.labels)
        for key, items in pt.problems.items():
            kept = problems.setdefault(key, [])
            for line, fld, message, hint in items:
                kept.append(
                    DataProblem(
                        message, file=fname, line=line + offset, field=fld, hint=hint, severity=key[0], kind=key[1]
                    )
                )
        for key, c in pt.counts.items():
            counts[key] = counts.get(key, 0) + c
        offset += pt.lines
    stats.lines = offset

    stats.duplicate_rows = _merge_duplicates(parts, fname, problems, counts, stream)

    for key in counts:
        problems.setdefault(key, [])
    for (severity, kind), items in sorted(
        problems.items(), key=lambda kv: min((p.line or 0 for p in kv[1]), default=0)
    ):
        items.sort(key=lambda p: p.line or 0)
        report.extend(kind, severity, items[:cap], counts[(severity, kind)])

    stats.token_count_exact = exact
    stats.tokens = TokenStats.from_counts(tokens)
    stats.output_tokens = TokenStats.from_counts(out_tokens)
    stats.messages_per_row = dict(sorted(messages.items()))
    stats.billing_tokens_estimate = stats.tokens.total * stats.epochs
    if stats.task == "text-classification":
        stats.labels = dict(labels.most_common())
        if len(labels) == 1 and stats.valid_rows > 1:
            only = next(iter(labels))
            report.add(
                DataProblem(
                    f"every row has the label {only!r}",
                    file=fname,
                    severity="warning",
                    hint="a classifier needs at least two classes",
                    kind="single-label",
                )
            )
            if stream is not None:
                stream.problem(report.warnings[-1])


def _merge_duplicates(
    parts: list[Partial],
    fname: str,
    problems: dict[tuple[str, str], list[DataProblem]],
    counts: dict[tuple[str, str], int],
    stream: ProblemStream | None,
) -> int:
    """Duplicate rows across the parts as problems (the first 50 kept, all streamed); returns how many."""
    dup_key = ("warning", "duplicate-row")
    dup_count, dup_examples = _duplicates(parts, None if stream is None else -1)
    if dup_count:
        counts[dup_key] = dup_count
        kept = problems[dup_key] = []
        for line, first in dup_examples:  # all of them when streaming (an iterator), else the first 50
            p = DataProblem(
                f"same as line {first}",
                file=fname,
                line=line,
                severity="warning",
                hint="duplicates weigh those examples more; remove them unless intended",
                kind="duplicate-row",
            )
            if len(kept) < 50:
                kept.append(p)
            if stream is not None:
                stream.problem(p)
    return dup_count


SMALL_DUPLICATE_ROWS = 200_000  # below this, a dict beats importing numpy


def _duplicates_small(parts: list[Partial], offsets: list[int], limit: int = 50) -> tuple[int, list[tuple[int, int]]]:
    from array import array

    seen: dict[int, int] = {}
    count = 0
    pairs: list[tuple[int, int]] = []
    for pt, off in zip(parts, offsets):
        hs, ls = array("Q"), array("Q")
        hs.frombytes(bytes(pt.hashes))
        ls.frombytes(bytes(pt.hash_lines))
        for h, line in zip(hs, ls):
            line += off
            first = seen.setdefault(h, line)
            if first != line:
                count += 1
                if limit < 0 or len(pairs) < limit:
                    pairs.append((line, first))
    return count, pairs


def _duplicates(parts: list[Partial], limit: int | None = None) -> tuple[int, Iterable[tuple[int, int]]]:
    """(number of rows identical to an earlier row, the first ``limit`` (line, earlier line) pairs: 50 by default,
    all when negative; sorted by line)."""
    limit = 50 if limit is None else limit
    offsets = []
    off = 0
    for pt in parts:
        offsets.append(off)
        off += pt.lines
    if sum(len(pt.hashes) for pt in parts) < SMALL_DUPLICATE_ROWS:
        return _duplicates_small(parts, offsets, limit)  # numpy's import costs more than the work for small files
    import numpy as np

    hs = [np.frombuffer(pt.hashes, dtype=np.uint64) for pt in parts if len(pt.hashes)]
    if not hs:
        return 0, []
    ls = [
        np.frombuffer(pt.hash_lines, dtype=np.uint64) + np.uint64(o) for pt, o in zip(parts, offsets) if len(pt.hashes)
    ]
    h = np.concatenate(hs)
    lines = np.concatenate(ls)
    _, first_idx, inverse = np.unique(h, return_index=True, return_inverse=True)
    first_of = first_idx[inverse]
    dup = first_of != np.arange(len(h))
    count = int(dup.sum())
    if not count:
        return 0, []
    where = np.nonzero(dup)[0]
    if limit >= 0:
        return count, [(int(lines[i]), int(lines[first_of[i]])) for i in where[:limit]]
    return count, ((int(lines[i]), int(lines[first_of[i]])) for i in where)
