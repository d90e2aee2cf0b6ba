"""Bounded YAML loading with line numbers, for files a user (or an attacker) hands to azft.

The document is read from libyaml's event stream (PyYAML's C parser, iterative: deep nesting cannot exhaust the
stack) and built into plain Python values here, so every limit is checked as the document grows:

* regular files only (a FIFO, a device such as ``/dev/zero``, a directory is refused before it is opened for reading),
  at most :data:`MAX_BYTES`;
* at most :data:`MAX_DEPTH` levels of nesting, :data:`MAX_NODES` values (aliases count as many values as they expand
  to: "billion laughs" stops at the limit instead of growing without bound) and :data:`MAX_ALIASES` aliases.

Scalars are resolved with the YAML 1.2 core schema (``yes``/``no``/``on``/``off`` stay strings). Only the standard
tags (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``, ``!!map``, ``!!seq``) are accepted; merge keys
(``<<: *base``) work.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 20_000
MAX_ALIASES = 1_000

_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_STD_TAG = "tag:yaml.org,2002:"


class YamlLimitError(ValueError):
    """The document breaks a limit or is not YAML azft accepts; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: Optional[int] = None, hint: Optional[str] = None):
        super().__init__(message)
        self.message, self.line, self.hint = message, line, hint


def read_regular_file(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; OSError/ValueError with a plain reason otherwise."""
    p = Path(path)
    st = os.stat(p)  # follows symlinks; FileNotFoundError / symlink loops surface as OSError
    kind = file_kind(st.st_mode)
    if kind != "a regular file":
        raise ValueError(f"is {kind}, not a regular file")
    if st.st_size > max_bytes:
        raise ValueError(f"is {st.st_size / 1e6:.1f} MB; a {what} may be at most {max_bytes // (1024 * 1024)} MB")
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between stat and open
            raise ValueError("is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"is larger than {max_bytes // (1024 * 1024)} MB")
    return data


def path_problem(path: str | os.PathLike) -> Optional[str]:
    """Why ``path`` cannot be read as a data or spec file ("is a directory", "is a FIFO (named pipe), not a regular
    file", "is a symlink loop", "does not exist"), or None for a regular file."""
    import errno

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "is a broken symlink" if os.path.islink(path) else "does not exist"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop"
        if e.errno == errno.ENAMETOOLONG:
            return "is a path too long for the file system"
        return f"cannot be read ({e.strerror or e})"
    kind = file_kind(st.st_mode)
    if kind == "a regular file":
        return None
    return "is a directory" if kind == "a directory" else f"is {kind}, not a regular file"


def file_kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _resolve_plain(value: str) -> Any:
    if _NULL.fullmatch(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.fullmatch(value):
        return int(value)
    if _OCT.fullmatch(value):
        return int(value[2:], 8)
    if _HEX.fullmatch(value):
        return int(value[2:], 16)
    if _FLOAT.fullmatch(value):
        return float(value)
    if _INF.fullmatch(value):
        return float("-inf") if value.startswith("-") else float("inf")
    if _NAN.fullmatch(value):
        return float("nan")
    return value


def _scalar(ev: Any) -> Any:
    tag = ev.tag
    if tag is None:
        return _resolve_plain(ev.value) if ev.implicit[0] else ev.value
    if tag == "!":
        return ev.value
    if not tag.startswith(_STD_TAG):
        raise YamlLimitError(
            f"the YAML tag {tag!r} is not supported",
            ev.start_mark.line + 1,
            hint="write plain values; tags are not needed in this file",
        )
    kind = tag[len(_STD_TAG) :]
    if kind == "str":
        return ev.value
    resolved = _resolve_plain(ev.value)
    want = {"int": int, "float": (int, float), "bool": bool, "null": type(None)}.get(kind)
    if want is None or not isinstance(resolved, want) or (kind == "int" and isinstance(resolved, bool)):
        raise YamlLimitError(f"{ev.value!r} is not a valid !!{kind}"[:120], ev.start_mark.line + 1)
    return float(resolved) if kind == "float" else resolved


@dataclass
class _Frame:
    value: Any
    path: tuple
    nodes: int = 1
    key: Any = None
    key_line: int = 0
    has_key: bool = False
    merged: set = field(default_factory=set)


@dataclass
class Loaded:
    """A loaded document: the plain value and the 1-based line of every key path."""

    value: Any
    lines: dict = field(default_factory=dict)


class _Builder:
    def __init__(self, max_depth: int, max_nodes: int, max_aliases: int):
        self.max_depth, self.max_nodes, self.max_aliases = max_depth, max_nodes, max_aliases
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.anchor_of: list[Optional[str]] = []
        self.nodes = 0
        self.aliases = 0
        self.lines: dict[tuple, int] = {(): 1}
        self.root: Any = None
        self.done = False

    def _count(self, n: int, line: int) -> None:
        self.nodes += n
        if self.nodes > self.max_nodes:
            raise YamlLimitError(
                f"the document has more than {self.max_nodes:,} values (after expanding aliases)",
                line,
                hint="a spec is a few dozen keys; is this the right file?",
            )

    def _child_path(self) -> tuple:
        top = self.stack[-1]
        if isinstance(top.value, list):
            return top.path + (len(top.value),)
        return top.path + (top.key,)

    def _add(self, value: Any, nodes: int, line: int) -> None:
        """Attach a finished value to its parent (or make it the document)."""
        if not self.stack:
            if self.done:
                raise YamlLimitError(
                    "the file holds more than one YAML document",
                    line,
                    hint="keep one document (remove the extra `---`)",
                )
            self.root, self.done = value, True
            return
        top = self.stack[-1]
        top.nodes += nodes
        if isinstance(top.value, list):
            self.lines[top.path + (len(top.value),)] = line
            top.value.append(value)
            return
        if not top.has_key:
            if isinstance(value, (dict, list)):
                raise YamlLimitError("mapping keys must be plain values, not mappings or lists", line)
            top.key, top.key_line, top.has_key = value, line, True
            return
        key, top.has_key = top.key, False
        if key == "<<" and isinstance(value, (dict, list)):
            for src in value if isinstance(value, list) else [value]:
                if not isinstance(src, dict):
                    raise YamlLimitError("a merge key (<<) takes a mapping or a list of mappings", line)
                for k, v in src.items():
                    if k not in top.value:
                        top.value[k] = v
                        top.merged.add(k)
            return
        if key in top.value and key not in top.merged:
            raise YamlLimitError(f"duplicate key {str(key)[:80]!r}", top.key_line, hint="each key may appear once")
        top.merged.discard(key)
        top.value[key] = value
        if isinstance(key, (str, int, float, bool)) or key is None:
            self.lines[top.path + (key,)] = top.key_line

    def event(self, ev: Any) -> None:
        import yaml

        line = ev.start_mark.line + 1 if getattr(ev, "start_mark", None) else None
        if isinstance(ev, yaml.ScalarEvent):
            self._count(1, line)
            value = _scalar(ev)
            if ev.anchor:
                self.anchors[ev.anchor] = (value, 1)
            self._add(value, 1, line)
        elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._count(1, line)
            if len(self.stack) >= self.max_depth:
                raise YamlLimitError(f"the document is nested more than {self.max_depth} levels deep", line)
            tag = ev.tag
            if tag not in (None, "!", _STD_TAG + "map", _STD_TAG + "seq", _STD_TAG + "omap"):
                raise YamlLimitError(f"the YAML tag {tag!r} is not supported", line)
            path = (
                self._child_path()
                if self.stack and (isinstance(self.stack[-1].value, list) or self.stack[-1].has_key)
                else ()
            )
            container: Any = {} if isinstance(ev, yaml.MappingStartEvent) else []
            self.stack.append(_Frame(container, path))
            self.anchor_of.append(ev.anchor)
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = self.stack.pop()
            anchor = self.anchor_of.pop()
            if anchor:
                self.anchors[anchor] = (frame.value, frame.nodes)
            self._add(frame.value, frame.nodes, line)
        elif isinstance(ev, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > self.max_aliases:
                raise YamlLimitError(f"the document uses more than {self.max_aliases} aliases", line)
            if ev.anchor not in self.anchors:
                raise YamlLimitError(f"unknown alias *{ev.anchor}", line)
            value, nodes = self.anchors[ev.anchor]
            self._count(nodes, line)
            self._add(value, nodes, line)


def load_yaml(
    text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES, max_aliases: int = MAX_ALIASES
) -> Loaded:
    """Parse one YAML document into plain values with key lines.

    Raises :class:`YamlLimitError` for broken limits and unsupported YAML, ``yaml.MarkedYAMLError`` for syntax."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    builder = _Builder(max_depth, max_nodes, max_aliases)
    for ev in yaml.parse(text, Loader=loader):
        builder.event(ev)
    return Loaded(builder.root, builder.lines)
