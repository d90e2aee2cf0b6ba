"""The result of a data check: problems grouped by kind, and the file's statistics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from azft.errors import Problem

PERCENTILES = (50, 90, 95, 99)


@dataclass
class DataProblem(Problem):
    """A Problem with the kind it is grouped under (``invalid-json``, ``missing-field``, ``too-long`` ...)."""

    kind: str = ""


@dataclass
class TokenStats:
    """Distribution of per-row token counts (exact, or estimated when ``exact`` is false)."""

    rows: int = 0
    total: int = 0
    min: int = 0
    max: int = 0
    mean: float = 0.0
    percentiles: dict[str, int] = field(default_factory=dict)  # "p50" -> tokens
    histogram: list[tuple[int, int, int]] = field(default_factory=list)  # (low, high exclusive, rows)

    @classmethod
    def from_counts(cls, counts: Counter) -> TokenStats:
        """Build from {tokens: rows}; memory is bounded by the number of distinct lengths, not rows."""
        rows = sum(counts.values())
        if not rows:
            return cls()
        keys = sorted(counts)
        total = sum(k * v for k, v in counts.items())
        pct: dict[str, int] = {}
        targets = [(p, max(1, -(-p * rows // 100))) for p in PERCENTILES]  # nearest-rank
        seen = 0
        ti = 0
        for k in keys:
            seen += counts[k]
            while ti < len(targets) and seen >= targets[ti][1]:
                pct[f"p{targets[ti][0]}"] = k
                ti += 1
        lo, hi = keys[0], keys[-1]
        edge = 1
        while edge * 2 <= max(lo, 1):
            edge *= 2
        edges = [0 if lo == 0 else edge]
        while edges[-1] <= hi:
            edges.append(max(edges[-1] * 2, 1) if edges[-1] else 1)
        while len(edges) > 13:  # keep it small: merge pairs of bins
            edges = edges[::2] + ([edges[-1]] if (len(edges) - 1) % 2 else [])
        hist = []
        ki = 0
        for a, b in zip(edges, edges[1:]):
            n = 0
            while ki < len(keys) and keys[ki] < b:
                n += counts[keys[ki]]
                ki += 1
            hist.append((a, b, n))
        return cls(rows=rows, total=total, min=lo, max=hi, mean=round(total / rows, 2), percentiles=pct, histogram=hist)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "percentiles": dict(self.percentiles),
            "histogram": [{"low": a, "high": b, "rows": n} for a, b, n in self.histogram],
        }


@dataclass
class DataStats:
    task: str
    size_bytes: int = 0
    lines: int = 0
    rows: int = 0  # non-blank lines
    valid_rows: int = 0  # rows without errors
    blank_lines: int = 0
    has_bom: bool = False
    messages_per_row: dict[int, int] = field(default_factory=dict)  # chat: {messages: rows}
    tokens: TokenStats = field(default_factory=TokenStats)
    output_tokens: TokenStats = field(default_factory=TokenStats)  # assistant / completion / target tokens
    token_count_exact: bool = False
    tokenizer: str = ""  # where counts come from, or why they are estimates
    context_length: int | None = None
    over_context_rows: int = 0
    duplicate_rows: int = 0
    epochs: int = 1
    billing_tokens_estimate: int = 0  # total tokens × epochs
    labels: dict[str, int] | None = None  # text classification: {label: rows}
    labels_truncated: bool = False
    elapsed_s: float = 0.0
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["tokens"] = self.tokens.to_dict()
        d["output_tokens"] = self.output_tokens.to_dict()
        d["messages_per_row"] = {str(k): v for k, v in sorted(self.messages_per_row.items())}
        d["billing_tokens_per_epoch"] = self.tokens.total
        return d


@dataclass
class DataReport:
    """Everything a data check found. ``errors``/``warnings`` keep the first problems of each kind; the counts
    are complete."""

    path: str
    task: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)  # kind -> number found
    warning_counts: dict[str, int] = field(default_factory=dict)
    stats: DataStats | None = None
    outputs: dict[str, dict] | None = None  # the valid/invalid row files a check wrote, when asked

    @property
    def ok(self) -> bool:
        return not self.error_counts

    @property
    def error_total(self) -> int:
        return sum(self.error_counts.values())

    @property
    def warning_total(self) -> int:
        return sum(self.warning_counts.values())

    def grouped(self, severity: str = "error") -> dict[str, list[Problem]]:
        """Problems by kind, in the order kinds were first seen."""
        src = self.errors if severity == "error" else self.warnings
        out: dict[str, list[Problem]] = {}
        for p in src:
            out.setdefault(getattr(p, "kind", ""), []).append(p)
        return out

    def warning_lines(self, first: int = 3) -> list[str]:
        """One line per kind of warning: how many rows have it and where the first ones are (what validate, plan and
        the CI summary all show), e.g. ``12 rows: line 3: about 80 tokens, over max_seq_length of 64 — …; also
        lines 5, 9``."""
        out = []
        for kind, problems in self.grouped("warning").items():
            total = self.warning_counts.get(kind, len(problems))
            head = problems[0].render()
            more = [str(p.line) for p in problems[1:first] if getattr(p, "line", None)]
            also = f"; also line{'s' if len(more) > 1 else ''} {', '.join(more)}" if more else ""
            rest = total - 1 - len(more)
            also += f" and {rest} more" if rest > 0 else ""
            out.append(f"{total} row{'s' if total != 1 else ''}: {head}{also}" if total > 1 else head)
        return out

    def add(self, problem: DataProblem) -> None:
        self.extend(problem.kind, problem.severity, [problem], 1)

    def extend(self, kind: str, severity: str, problems: list[Problem], total: int) -> None:
        """Record ``total`` problems of one kind, of which ``problems`` are kept."""
        counts = self.error_counts if severity == "error" else self.warning_counts
        counts[kind] = counts.get(kind, 0) + total
        for p in problems:
            (self.errors if severity == "error" else self.warnings).append(p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "task": self.task,
            "ok": self.ok,
            "error_count": self.error_total,
            "warning_count": self.warning_total,
            "error_counts": dict(self.error_counts),
            "warning_counts": dict(self.warning_counts),
            "errors": [p.to_dict() for p in self.errors],
            "warnings": [p.to_dict() for p in self.warnings],
            "stats": self.stats.to_dict() if self.stats else None,
            **({"outputs": self.outputs} if self.outputs else {}),
        }
