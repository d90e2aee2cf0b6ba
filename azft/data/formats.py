"""Source formats a conversion reads, row by row: Alpaca, ShareGPT, prompt/completion and OpenAI chat.

Each reader turns one parsed row into a list of chat messages (``{"role", "content"}`` plus ``name``/``weight``
where the source has them) or raises :class:`Skip` naming the field and why the row cannot be converted. Every
role mapping and every dropped field is counted in a :class:`Mapping`, so the report shows what was done instead of
doing it silently. Readers run once per row on the hot path: plain Python, no allocation beyond the output.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

try:
    from _collections import _count_elements  # what Counter.update runs, without its per-call type checks
except ImportError:  # pragma: no cover - other Python implementations

    def _count_elements(mapping: Any, iterable: Any) -> None:
        for k in iterable:
            mapping[k] = mapping.get(k, 0) + 1


SOURCE_FORMATS = ("alpaca", "sharegpt", "prompt-completion", "openai")
TARGETS = ("chat-completion", "text-generation")

# ShareGPT speaker names (`from`) and the chat roles they become. Anything else is an error unless mapped with
# --role NAME=ROLE. Tool turns have no place in Azure's chat format and are refused.
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
TOOL_TURNS = frozenset(("function_call", "observation", "tool", "function", "tool_call", "tool_response", "ipython"))
OPENAI_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "developer": "system"}
OPENAI_MESSAGE_KEYS = frozenset(
    ("role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id", "refusal")
)
MEDIA_KEYS = ("images", "videos", "audios")
TOOLS_KEYS = ("tools", "functions")


class Skip(Exception):
    """A row that cannot be converted: ``kind`` groups it in the report, ``field`` says where in the row."""

    def __init__(self, kind: str, message: str, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.field, self.hint = kind, message, field, hint


class Mapping:
    """What a conversion did, with counts: role mappings ((source, target) pairs such as ("human", "user")) and
    notes ("field 'id' dropped")."""

    def __init__(self, extra_roles: dict[str, str] | None = None):
        self.roles: Counter = Counter()
        self.notes: Counter = Counter()
        self.row_roles: list = []  # the current row's; counted when the row is written
        self.row_notes: list = []
        self.sharegpt_roles = {**SHAREGPT_ROLES, **(extra_roles or {})}
        self.openai_roles = {**OPENAI_ROLES, **(extra_roles or {})}

    def commit(self) -> None:
        """The row was written: count what was done to it."""
        if self.row_roles:
            _count_elements(self.roles, self.row_roles)
            self.row_roles.clear()
        if self.row_notes:
            _count_elements(self.notes, self.row_notes)
            self.row_notes.clear()

    def discard(self) -> None:
        self.row_roles.clear()
        self.row_notes.clear()


def _typename(v: Any) -> str:
    return {
        type(None): "null",
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(v), type(v).__name__)


def _text(v: Any, fld: str, *, empty_ok: bool = False) -> str:
    if type(v) is not str:
        raise Skip("wrong-type", f"must be a string, got {_typename(v)}", fld)
    if not empty_ok and (not v or v.isspace()):
        raise Skip("empty-turn", "empty text", fld, "give every turn text, or drop the row")
    return v


def _unknown_fields(obj: dict, known: frozenset, m: Mapping) -> None:
    for key, v in obj.items():
        if key not in known and v is not None:
            m.row_notes.append(f"field {key!r} dropped (the target format has no place for it)")


def _no_media(obj: dict) -> None:
    for key in MEDIA_KEYS:
        if obj.get(key):
            raise Skip("media", f"the row has {key}: the target format holds text only", key)


def _tools_dropped(obj: dict, m: Mapping) -> None:
    for key in TOOLS_KEYS:
        if obj.get(key):
            m.row_notes.append(f"{key!r} definitions dropped (no tool calls in the row)")


# ------------------------------------------------------------------------------------------------ alpaca

_ALPACA_KEYS = frozenset(("instruction", "input", "output", "system", "history"))


def read_alpaca(obj: dict, m: Mapping) -> list[dict]:
    """instruction (+ newline + input) → user, output → assistant, system → system, history → earlier turns."""
    if "instruction" not in obj or "output" not in obj:
        missing = "instruction" if "instruction" not in obj else "output"
        raise Skip(
            "wrong-format",
            f"missing {missing!r}: not an Alpaca row",
            missing,
            "Alpaca rows have instruction, input (optional) and output",
        )
    if len(obj) > 3:
        _unknown_fields(obj, _ALPACA_KEYS, m)
    instruction = _text(obj["instruction"], "instruction", empty_ok=True)
    inp = obj.get("input")
    inp = "" if inp is None else _text(inp, "input", empty_ok=True)
    user = (
        f"{instruction}\n{inp}"
        if inp.strip() and instruction.strip()
        else (instruction if instruction.strip() else inp)
    )
    if not user.strip():
        raise Skip("empty-turn", "instruction and input are both empty", "instruction")
    answer = _text(obj["output"], "output")
    msgs = []
    system = obj.get("system")
    if system is not None and _text(system, "system", empty_ok=True).strip():
        msgs.append({"role": "system", "content": system})
        m.row_roles.append(("system", "system"))
    history = obj.get("history")
    if history:
        if type(history) is not list:
            raise Skip(
                "wrong-type",
                f"history must be an array of [instruction, output] pairs, got {_typename(history)}",
                "history",
            )
        for i, pair in enumerate(history):
            if type(pair) not in (list, tuple) or len(pair) != 2:
                raise Skip("wrong-type", "each history entry must be an [instruction, output] pair", f"history[{i}]")
            msgs.append({"role": "user", "content": _text(pair[0], f"history[{i}][0]")})
            msgs.append({"role": "assistant", "content": _text(pair[1], f"history[{i}][1]")})
        m.row_roles.append(("history", "earlier user/assistant turns"))
    msgs.append({"role": "user", "content": user})
    msgs.append({"role": "assistant", "content": answer})
    m.row_roles.append(("instruction (+ newline + input)", "user"))
    m.row_roles.append(("output", "assistant"))
    return msgs


# ------------------------------------------------------------------------------------------------ sharegpt


def _turns(obj: dict, key: str, what: str, known: frozenset, m: Mapping, media: bool = False) -> list:
    """The row's array of turns under ``key``; the row's other fields checked (unknown ones noted, tools dropped,
    media refused when ``media``)."""
    turns = obj.get(key)
    if turns is None:
        raise Skip("wrong-format", f"missing {key!r}: not {what}", key)
    if type(turns) is not list:
        raise Skip("wrong-type", f"must be an array, got {_typename(turns)}", key)
    if len(obj) > 1:
        _unknown_fields(obj, known, m)
        if media:
            _no_media(obj)
        _tools_dropped(obj, m)
    return turns


_SHAREGPT_KEYS = frozenset(("conversations", "system", "tools") + MEDIA_KEYS)


def read_sharegpt(obj: dict, m: Mapping) -> list[dict]:
    """conversations: [{"from": "human"|"gpt"|"system", "value": ...}] (or role/content turns); system → first."""
    conv = _turns(obj, "conversations", "a ShareGPT row", _SHAREGPT_KEYS, m, media=True)
    roles = m.sharegpt_roles
    seen = m.row_roles
    msgs = []
    system = obj.get("system")
    if system is not None and _text(system, "system", empty_ok=True).strip():
        msgs.append({"role": "system", "content": system})
        seen.append(("system (field)", "system"))
    head, mark = len(msgs), len(seen)
    try:  # the common case: from/value turns with known speakers and text
        for turn in conv:
            who = turn["from"]
            text = turn["value"]
            role = roles[who]
            if type(text) is not str or not text or text.isspace():
                raise KeyError
            seen.append((who, role))
            msgs.append({"role": role, "content": text})
        return msgs
    except (KeyError, TypeError):  # anything else: the turn-by-turn reading below names the problem
        del msgs[head:]
        del seen[mark:]
    return _sharegpt_turns(conv, roles, m, msgs)


def _sharegpt_turns(conv: list, roles: dict, m: Mapping, msgs: list[dict]) -> list[dict]:
    seen = m.row_roles
    for i, turn in enumerate(conv):
        if type(turn) is not dict:
            raise Skip("wrong-type", f"must be an object, got {_typename(turn)}", f"conversations[{i}]")
        if turn.get("from") is not None or "role" not in turn:  # Arrow rows hold every key, None where unset
            who, text, kf, kv = turn.get("from"), turn.get("value"), "from", "value"
        else:
            who, text, kf, kv = turn.get("role"), turn.get("content"), "role", "content"
        role = roles.get(who) if type(who) is str else None
        if role is None:
            _bad_speaker(who, i, kf, turn)
        if type(text) is not str or not text or text.isspace():
            _text(text, f"conversations[{i}].{kv}")
        seen.append((who, role))
        msgs.append({"role": role, "content": text})
    return msgs


def _bad_speaker(who: Any, i: int, kf: str, turn: dict) -> None:
    fld = f"conversations[{i}].{kf}"
    if who is None:
        raise Skip("missing-field", "the speaker is missing", fld)
    if type(who) is not str:
        raise Skip("wrong-type", f"the speaker must be a string, got {_typename(who)}", fld)
    if who in TOOL_TURNS:
        raise Skip(
            "tool-calls",
            f"a {who!r} turn: Azure's chat format has no place for tool calls or their results",
            fld,
            "drop tool-use rows, or fine-tune them with a tool-calling format elsewhere",
        )
    known = ", ".join(sorted(SHAREGPT_ROLES))
    raise Skip(
        "unknown-role",
        f"unknown speaker {who!r}"[:200],
        fld,
        f"known speakers: {known}; map another with --role NAME=user|assistant|system",
    )


# ------------------------------------------------------------------------------------------------ prompt/completion

_PC_KEYS = frozenset(("prompt", "completion"))


def read_prompt_completion(obj: dict, m: Mapping) -> list[dict]:
    """prompt → user, completion → assistant."""
    if "prompt" not in obj or "completion" not in obj:
        missing = "prompt" if "prompt" not in obj else "completion"
        raise Skip("wrong-format", f"missing {missing!r}: not a prompt/completion row", missing)
    if len(obj) > 2:
        _unknown_fields(obj, _PC_KEYS, m)
    prompt = _text(obj["prompt"], "prompt")
    completion = _text(obj["completion"], "completion")
    m.row_roles.append(("prompt", "user"))
    m.row_roles.append(("completion", "assistant"))
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


# ------------------------------------------------------------------------------------------------ openai

_OPENAI_KEYS = frozenset(("messages", "tools", "functions", "parallel_tool_calls"))


def read_openai(obj: dict, m: Mapping) -> list[dict]:
    """messages with role/content (text parts joined); developer → system; tool calls refused."""
    messages = _turns(obj, "messages", "an OpenAI chat row", _OPENAI_KEYS, m)
    roles = m.openai_roles
    out = []
    for i, msg in enumerate(messages):
        fld = f"messages[{i}]"
        if type(msg) is not dict:
            raise Skip("wrong-type", f"must be an object, got {_typename(msg)}", fld)
        who = msg.get("role")
        if msg.get("tool_calls") or msg.get("function_call") is not None or who in ("tool", "function"):
            what = "a tool result" if who in ("tool", "function") else "tool calls"
            raise Skip(
                "tool-calls",
                f"{what}: Azure's chat format has no place for them",
                fld,
                "drop tool-use rows, or fine-tune them with a tool-calling format elsewhere",
            )
        role = roles.get(who) if type(who) is str else None
        if role is None:
            if who is None:
                raise Skip("missing-field", "the role is missing", f"{fld}.role")
            raise Skip(
                "unknown-role",
                f"unknown role {who!r}"[:200],
                f"{fld}.role",
                "roles are system, user, assistant (developer → system); map another with --role NAME=ROLE",
            )
        new = {"role": role, "content": _openai_content(msg.get("content"), fld)}
        for key in ("name", "weight"):
            if msg.get(key) is not None:
                new[key] = msg[key]
        if len(msg) > 2:
            for key, v in msg.items():
                if key not in OPENAI_MESSAGE_KEYS and v is not None:
                    m.row_notes.append(f"message field {key!r} dropped")
        m.row_roles.append((who, role))
        out.append(new)
    return out


def _openai_content(content: Any, fld: str) -> str:
    if type(content) is str:
        return _text(content, f"{fld}.content")
    if type(content) is list:
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if type(part) is dict else None
            if kind != "text" or type(part.get("text")) is not str:
                raise Skip(
                    "media", f"a {kind or _typename(part)!s} part: the target holds text only", f"{fld}.content[{j}]"
                )
            texts.append(part["text"])
        return _text("".join(texts), f"{fld}.content")
    if content is None:
        raise Skip("wrong-type", "the content is null", f"{fld}.content")
    return _text(content, f"{fld}.content")


READERS = {
    "alpaca": read_alpaca,
    "sharegpt": read_sharegpt,
    "prompt-completion": read_prompt_completion,
    "openai": read_openai,
}

DESCRIPTIONS = {
    "alpaca": "instruction/input/output",
    "sharegpt": "conversations with from/value turns",
    "prompt-completion": "prompt/completion",
    "openai": "messages with role/content",
}


def detect_format(obj: Any) -> str | None:
    """The source format of one row, from its fields."""
    if type(obj) is not dict:
        return None
    if type(obj.get("conversations")) is list:
        return "sharegpt"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if type(obj.get("messages")) is list:
        return "openai"
    if "prompt" in obj and "completion" in obj:
        return "prompt-completion"
    return None
