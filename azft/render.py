"""One way to turn values into table cells and timestamps, for every command's table output.

A cell never shows `None`, a Python repr or JSON: missing values are `—`, mappings are `key=value` lists, sequences
are comma lists, numbers are formatted by what they measure (tokens, USD, hours, GB). Timestamps are ISO 8601 in
UTC to the second (`2026-12-04T15:33:35Z`) whatever the backend or MLflow gave.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable, Optional

MISSING = "—"

# Keys whose numbers measure something; the suffix of a key decides its kind when no kind is given.
_KIND_BY_SUFFIX = (
    ("_per_1k_tokens", "usd"),
    ("_usd", "usd"),
    ("usd", "usd"),
    ("_tokens", "tokens"),
    ("tokens_total", "tokens"),
    ("tokens_per_epoch", "tokens"),
    ("_hours", "hours"),
    ("hours", "hours"),
    ("_gb", "gb"),
)


def kind_of(key: str) -> Optional[str]:
    """The kind of number a key holds, from its name (`cost_usd` → usd, `training_tokens_total` → tokens)."""
    k = key.lower()
    for suffix, kind in _KIND_BY_SUFFIX:
        if k.endswith(suffix):
            return kind
    return None


def number(value: float, kind: Optional[str] = None) -> str:
    """A number as a reader expects it for its kind."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind == "tokens":
        return f"{int(round(value)):,}"
    if kind == "usd":
        return f"${value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"${value:.4g}"
    if kind == "hours":
        return f"{value:.2f} h"
    if kind == "gb":
        return f"{value:.1f} GB"
    if isinstance(value, int):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.6g}"
    return f"{value:.3g}"


def cell(value: Any, kind: Optional[str] = None) -> str:
    """One table cell: never `None`, never a repr or JSON."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return number(value, kind)
    if isinstance(value, _dt.datetime):
        return timestamp(value)
    if isinstance(value, dict):
        parts = [f"{k}={_nested(v, kind_of(str(k)))}" for k, v in value.items() if v is not None]
        return ", ".join(parts) if parts else MISSING
    if isinstance(value, (list, tuple, set)):
        parts = [cell(v, kind) for v in value]
        return ", ".join(parts) if parts else MISSING
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return str(value)


def _nested(value: Any, kind: Optional[str]) -> str:
    text = cell(value, kind)
    return f"({text})" if isinstance(value, (dict, list, tuple, set)) and len(value) > 1 else text


def timestamp(value: Any) -> Optional[str]:
    """ISO 8601, UTC, seconds: `2026-12-04T15:33:35Z`. Accepts datetimes, ISO strings (any offset, `Z`, a space for
    `T`, fractions) and epoch seconds or milliseconds. None stays None; an unreadable string is returned as given."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = value / 1000 if value > 1e11 else value
        d = _dt.datetime.fromtimestamp(secs, tz=_dt.timezone.utc)
    elif isinstance(value, _dt.datetime):
        d = value
    else:
        text = str(value).strip()
        try:
            d = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.astimezone(_dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_label(key: str) -> str:
    """A dict key as a row label: `training_tokens_total` → `training tokens total`."""
    return str(key).replace("_", " ")


def kv_table(title: Optional[str], rows: Iterable[tuple[str, Any]], *, kinds: Optional[dict] = None):
    """A two-column rich table of labelled values; nested mappings become a sub-table in the cell."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, show_header=False, expand=False)
    t.add_column(no_wrap=True)
    t.add_column(overflow="fold")
    for key, value in rows:
        kind = (kinds or {}).get(key) or kind_of(key)
        if isinstance(value, dict) and value and any(isinstance(v, (dict, list)) for v in value.values()):
            t.add_row(escape(key_label(key)), kv_table(None, value.items()))
        else:
            t.add_row(escape(key_label(key)), escape(cell(value, kind)))
    return t


def id_column(table, header: str, **kw) -> None:
    """A column holding ids: never wrapped or cut, whatever the terminal width."""
    table.add_column(header, no_wrap=True, overflow="ignore", min_width=len(header), **kw)


def print_table(console, table) -> None:
    """Print a table at the terminal's width, or wider when that is what keeps its ids and times whole (a CI log
    does not wrap; a cut job name cannot be pasted back into `azft status`)."""
    from rich.text import Text

    for col in table.columns:
        if col.no_wrap:
            texts = [c for c in [*col._cells, col.header] if isinstance(c, (str, Text))]
            widest = max((Text.from_markup(c).cell_len if isinstance(c, str) else c.cell_len for c in texts), default=0)
            col.min_width = max(col.min_width or 0, widest)
    from rich.measure import Measurement

    needed = Measurement.get(console, console.options.update_width(1000), table).minimum
    if needed > console.width:
        console.width = needed  # Console.print(width=) never widens past the console
    console.print(table, crop=False)
