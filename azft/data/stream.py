"""Every problem of a check as it is found, and the valid/invalid rows split off in the same pass.

The scanner hands over each chunk's problems as records sorted by line (see ``azft.data.scan``). Here they become
:class:`DataProblem` objects with file line numbers for the caller's ``on_problem``, and, with ``write_invalid``,
one record per invalid row in the ``<invalid>.problems.jsonl`` file beside it. With worker processes, the first
range streams live through a pipe; later ranges go through a pipe into a temporary file each and are replayed,
shifted to file line numbers, once the earlier ranges are done. Memory stays bounded by the chunk size.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import orjson

from azft.data.report import DataProblem
from azft.data.scan import Partial, ScanConfig
from azft.errors import DataError, UsageError

OnProblem = Callable[[DataProblem], None]
LIVE_QUEUE_LINES = 4096


def problems_path(invalid_out: str | os.PathLike) -> Path:
    """Where the problems of the rows in ``invalid_out`` are written: ``bad.jsonl`` → ``bad.problems.jsonl``."""
    p = Path(invalid_out)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return p.with_name(stem + ".problems.jsonl")


class ProblemStream:
    """Turns scanner records into DataProblems (``on_problem``) and invalid-row records (the problems file)."""

    def __init__(self, fname: str, on_problem: OnProblem | None, problems_file: Path | None):
        self.fname = fname
        self.on_problem = on_problem
        self.sidecar: IO[bytes] | None = open(problems_file, "wb") if problems_file else None
        self._line: int | None = None
        self._items: list[dict] = []
        self._error = False
        self.invalid_rows = 0  # lines with at least one error
        self.closed = False

    def records(self, records: list, offset: int = 0) -> None:
        fname, on_problem = self.fname, self.on_problem
        for line, severity, kind, fld, message, hint in records:
            line += offset
            if on_problem is not None:
                on_problem(
                    DataProblem(message, file=fname, line=line, field=fld, hint=hint, severity=severity, kind=kind)
                )
            if line != self._line:
                self._end_row()
                self._line = line
            self._error |= severity == "error"
            if self.sidecar is not None:
                item = {"severity": severity, "kind": kind, "field": fld, "message": message}
                if hint:
                    item["hint"] = hint
                self._items.append(item)

    def problem(self, p: DataProblem) -> None:
        """A problem found after the scan (duplicates, file-level problems): to ``on_problem`` only."""
        if self.on_problem is not None:
            self.on_problem(p)

    def _end_row(self) -> None:
        if self._error:
            self.invalid_rows += 1
        if self._error and self.sidecar is not None:
            self.sidecar.write(
                orjson.dumps({"line": self._line, "invalid_line": self.invalid_rows, "problems": self._items}) + b"\n"
            )
        self._items = []
        self._error = False
        self._line = None

    def close_rows(self) -> None:
        """No more line records: write the last row's problems and close the problems file."""
        if self.closed:
            return
        self.closed = True
        self._end_row()
        if self.sidecar is not None:
            self.sidecar.close()
            self.sidecar = None


class SplitOutputs:
    """The valid/invalid output files: written under temporary names beside the targets, renamed when complete."""

    def __init__(self, source: Path, valid: str | os.PathLike | None, invalid: str | os.PathLike | None):
        self.targets: dict[str, Path] = {}
        src = source.resolve()
        for role, path in (("valid", valid), ("invalid", invalid)):
            if path is None:
                continue
            p = Path(path)
            if p.is_dir():
                raise UsageError(f"--write-{role} {p} is a directory", hint="name a file to write")
            if p.resolve() == src or (role == "invalid" and problems_path(p).resolve() == src):
                raise UsageError(
                    f"--write-{role} {p} would overwrite the file being checked", hint="write the rows to another file"
                )
            if not p.parent.is_dir():
                raise UsageError(f"--write-{role} {p}: the directory {p.parent} does not exist")
            self.targets[role] = p
        if (
            valid is not None
            and invalid is not None
            and self.targets["valid"].resolve()
            in (self.targets["invalid"].resolve(), problems_path(self.targets["invalid"]).resolve())
        ):
            raise UsageError(
                "--write-valid and --write-invalid name the same file",
                hint=f"the invalid rows' problems go to {problems_path(self.targets['invalid'])}",
            )
        self.tmp = {role: p.with_name(f".{p.name}.{os.getpid()}.tmp") for role, p in self.targets.items()}
        self.parts: list[Path] = []
        self.done = False
        for role, t in self.tmp.items():
            try:
                t.write_bytes(b"")
            except OSError as exc:
                self.cleanup()
                raise DataError(f"--write-{role} {self.targets[role]}: cannot write there ({exc.strerror})") from None

    @property
    def problems_file(self) -> Path | None:
        t = self.targets.get("invalid")
        return None if t is None else problems_path(t).with_name("." + problems_path(t).name + ".tmp")

    def config(self, cfg: ScanConfig, index: int) -> ScanConfig:
        """The scan config of range ``index``: range 0 writes to the outputs, later ranges to part files."""
        if index == 0:
            return replace(cfg, valid_out=_s(self.tmp.get("valid")), invalid_out=_s(self.tmp.get("invalid")))
        paths = {}
        for role, t in self.tmp.items():
            part = t.with_name(f"{t.name}.{index}")
            part.write_bytes(b"")
            self.parts.append(part)
            paths[role] = str(part)
        return replace(cfg, valid_out=paths.get("valid"), invalid_out=paths.get("invalid"))

    def whole_file_invalid(self, source: Path) -> None:
        """A file that cannot be read as lines at all (UTF-16, binary): every byte of it is invalid."""
        if "invalid" in self.tmp:
            with open(source, "rb") as src, open(self.tmp["invalid"], "wb") as dst:
                _copy(src, dst)

    def finish(self, n_ranges: int) -> None:
        for role, t in self.tmp.items():
            with open(t, "ab") as dst:
                for i in range(1, n_ranges):
                    part = t.with_name(f"{t.name}.{i}")
                    with open(part, "rb") as src:
                        _copy(src, dst)
            os.replace(t, self.targets[role])
        pf = self.problems_file
        if pf is not None and pf.exists():
            os.replace(pf, problems_path(self.targets["invalid"]))
        self.done = True
        self.cleanup()

    def summary(self, lines: int, invalid: int) -> dict:
        """What was written: {"valid"|"invalid": {"path", "rows"[, "problems"]}} (rows = lines, blank ones too)."""
        out: dict = {}
        if "valid" in self.targets:
            out["valid"] = {"path": str(self.targets["valid"]), "rows": lines - invalid}
        if "invalid" in self.targets:
            out["invalid"] = {
                "path": str(self.targets["invalid"]),
                "rows": invalid,
                "problems": str(problems_path(self.targets["invalid"])),
            }
        return out

    def cleanup(self) -> None:
        leftovers = list(self.tmp.values()) + self.parts + ([self.problems_file] if self.problems_file else [])
        for p in leftovers:
            try:
                p.unlink()
            except OSError:
                pass


def _s(p: Path | None) -> str | None:
    return None if p is None else str(p)


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    try:
        size = os.fstat(src.fileno()).st_size
        dst.flush()
        while size > 0:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size)
            if n == 0:
                break
            size -= n
    except (AttributeError, OSError):  # not Linux, or a file system without copy_file_range
        import shutil

        shutil.copyfileobj(src, dst, 8 << 20)


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONHASHSEED"] = "0"  # duplicate detection compares line hashes across workers
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def worker_error(path: str, what: str, returncode: int, stderr: bytes) -> DataError:
    """The error for a worker process that failed: its exit status and the last line it wrote on stderr."""
    tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    return DataError(
        f"{path}: a {what} worker process failed (exit {returncode}): {tail[0]}", hint="rerun with --workers 1"
    )


def run_workers(jobs: list[Any], path: str, what: str, args: tuple[str, ...] = ()) -> list[Any]:
    """Run each job in its own ``python -m azft.data._worker *args`` process (the job pickled on its stdin, its
    result pickled on its stdout), all at once; the results in the order of ``jobs``."""
    import pickle
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    env = _worker_env()

    def run(job: Any) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "azft.data._worker", *args],
            input=pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL),
            capture_output=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise worker_error(path, what, proc.returncode, proc.stderr)
        return pickle.loads(proc.stdout)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def scan_parallel_streaming(
    cfgs: list[ScanConfig], ranges: list[tuple[int, int]], stream: ProblemStream | None
) -> list[Partial]:
    """Scan each range in a worker process; stream the first range's problems live and replay the others in
    file order. Returns the parts in file order."""
    import pickle
    import subprocess
    import sys

    env = _worker_env()
    live: queue.Queue = queue.Queue(maxsize=LIVE_QUEUE_LINES)  # bounded: a slow reader of the output holds worker 0
    spools: list[Any] = [None] * len(ranges)
    results: list[Any] = [None] * len(ranges)

    def run(i: int) -> None:
        cfg = cfgs[i]
        r = w = None
        if stream is not None:
            r, w = os.pipe()
            cfg = replace(cfg, problem_fd=w, stream=True)
        try:
            with tempfile.TemporaryFile() as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "azft.data._worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    env=env,
                    pass_fds=() if w is None else (w,),
                )
                if w is not None:
                    os.close(w)
                proc.stdin.write(pickle.dumps((cfg, ranges[i][0], ranges[i][1]), protocol=pickle.HIGHEST_PROTOCOL))
                proc.stdin.close()
                if r is not None:
                    with os.fdopen(r, "rb") as pipe:
                        r = None
                        if i == 0:
                            for line in pipe:
                                live.put(line)
                        else:
                            spools[i] = tempfile.TemporaryFile()
                            _drain(pipe, spools[i])
                out = proc.stdout.read()
                proc.wait()
                if proc.returncode != 0:
                    err.seek(0)
                    results[i] = worker_error(cfg.path, "data-check", proc.returncode, err.read())
                else:
                    results[i] = pickle.loads(out)
        except BaseException as exc:
            results[i] = exc
        finally:
            if r is not None:
                os.close(r)
            if i == 0:
                live.put(None)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(ranges))]
    for t in threads:
        t.start()
    loads = orjson.loads
    while (item := live.get()) is not None:
        if stream is not None:
            stream.records([tuple(loads(item))])
    for t in threads:
        t.join()
    for res in results:
        if isinstance(res, BaseException):
            raise res
    offset = results[0].lines
    for i in range(1, len(ranges)):
        spool = spools[i]
        if spool is not None and stream is not None:
            spool.seek(0)
            for line in spool:
                stream.records([tuple(loads(line))], offset)
            spool.close()
        offset += results[i].lines
    return results


def _drain(pipe: IO[bytes], spool: IO[bytes]) -> None:
    while chunk := pipe.read(1 << 16):
        spool.write(chunk)
