"""Row formats per fine-tuning task, and the per-row checks.

Every checker takes one parsed JSON object and reports problems through ``emit(kind, field, message, hint,
severity)``. It returns a :class:`Row` summary (token estimate, messages, texts to count exactly) for rows good
enough to train on, or ``None``. Checkers run once per line on the hot path, so they stay plain Python with no
allocation beyond what the report needs.

Field names follow Azure's documentation where it names them: chat (``messages`` with ``role``/``content``) and
text generation (``prompt``/``completion``) are the serverless formats; the Azure ML fine-tuning components take
column names for the other tasks, and these defaults are the ones their samples use (with accepted aliases).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

TASKS = (
    "chat-completion",
    "text-generation",
    "text-classification",
    "token-classification",
    "translation",
    "question-answering",
    "summarization",
)

ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = frozenset(("role", "content", "name", "weight"))

# Estimated template overhead: Phi-3 renders each turn as "<|role|>\n{content}<|end|>\n".
EST_TOKENS_PER_MESSAGE = 4
EST_TOKENS_PER_ROW = 1

Emit = Callable[[str, str, str, "str | None", str], None]


class Row(NamedTuple):
    """What the statistics need from one valid row."""

    est_total: int  # estimated tokens of the whole row (template included for chat)
    est_output: int  # estimated tokens the model learns to produce (assistant / completion / target ...)
    n_messages: int  # chat: number of messages; other tasks: 0
    label: Any  # text classification label, else None
    chat: list | None  # chat: the messages (for the chat template)
    inputs: tuple  # other tasks: input texts (for exact counting)
    outputs: tuple  # other tasks: output texts (for exact counting)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: ~4 characters per token for ASCII text, ~1 token per 3 UTF-8 bytes otherwise."""
    if text.isascii():
        return (len(text) + 3) >> 2
    return (len(text.encode("utf-8", "surrogatepass")) + 2) // 3


def _typename(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


# --------------------------------------------------------------------------------------------------- chat


def check_chat(obj: dict, emit: Emit) -> Row | None:
    messages = _chat_messages(obj, emit)
    if messages is None:
        return None
    ok = True
    est = EST_TOKENS_PER_ROW
    est_out = 0
    prev = None
    n_assistant = 0
    n_trained = 0
    last_role = None
    for i, m in enumerate(messages):
        if type(m) is not dict:
            emit("wrong-type", f"messages[{i}]", f"message must be an object, got {_typename(m)}", None, "error")
            ok = False
            prev = last_role = None
            continue
        role = m.get("role")
        content = m.get("content")
        if len(m) > 2 or "role" not in m or "content" not in m:
            fields_ok, untrained = _check_message_fields(m, i, role, emit)
            ok = ok and fields_ok
            n_trained -= untrained
        if type(role) is not str or role not in ROLES:
            _role_error(role, i, emit)
            ok = False
            role = None
        if type(content) is str and content and not content.isspace():
            t = estimate_tokens(content)
            est += t + EST_TOKENS_PER_MESSAGE
            if role == "assistant":
                est_out += t + 1
        else:
            _content_error(m, content, i, emit)
            ok = False
        if role == "assistant":
            n_assistant += 1
            n_trained += 1
        if (i < 2 or role == prev or role == "system") and not _check_role_order(role, prev, i, emit):
            ok = False  # (the first two messages, a repeated role and a system message are all it can refuse)
        prev = role
        last_role = role
    if n_assistant == 0:
        emit("no-assistant", "messages", "no assistant message", "every row needs at least one assistant turn", "error")
        return None
    if last_role != "assistant" and type(messages[-1]) is dict and messages[-1].get("role") in ("user", "system"):
        emit(
            "last-not-assistant",
            f"messages[{len(messages) - 1}].role",
            "the last message is not from the assistant",
            "end every conversation with the assistant's answer",
            "error",
        )
        ok = False
    if n_trained <= 0 and ok:
        emit("invalid-weight", "messages", "every assistant message has weight 0: nothing to train on", None, "error")
        ok = False
    if not ok:
        return None
    return Row(est, est_out, len(messages), None, messages, (), ())


def _chat_messages(obj: dict, emit: Emit) -> list | None:
    """The row's non-empty ``messages`` array (unknown top-level fields warned about), or None."""
    messages = obj.get("messages")
    if messages is None:
        hint = 'each line needs {"messages": [{"role": ..., "content": ...}, ...]}'
        if "prompt" in obj or "completion" in obj:
            hint = "this row looks like text-generation (prompt/completion); use --task text-generation or convert it"
        elif "conversations" in obj:
            hint = "this row looks like ShareGPT: `azft data convert FILE --from sharegpt --out OUT` converts it"
        elif "instruction" in obj:
            hint = "this row looks like Alpaca: `azft data convert FILE --from alpaca --out OUT` converts it"
        emit("missing-field", "messages", "missing required field 'messages'", hint, "error")
        return None
    if type(messages) is not list:
        emit("wrong-type", "messages", f"'messages' must be an array, got {_typename(messages)}", None, "error")
        return None
    if len(obj) > 1:
        for key in obj:
            if key != "messages":
                emit("unknown-field", key, f"unknown field {key!r} is ignored", None, "warning")
    if not messages:
        emit("empty-value", "messages", "'messages' is empty", "add at least a user and an assistant message", "error")
        return None
    return messages


def _check_message_fields(m: dict, i: int, role: Any, emit: Emit) -> tuple[bool, int]:
    """A message's fields beyond role and content: (whether they are valid, 1 when ``weight`` 0 takes an assistant
    message out of training)."""
    ok = True
    for key in m:
        if key not in MESSAGE_KEYS:
            hint = (
                "tool calls and function messages are not supported here"
                if key in ("tool_calls", "function_call", "tool_call_id")
                else None
            )
            emit("unknown-field", f"messages[{i}].{key}", f"unknown message field {key!r} is ignored", hint, "warning")
    if "name" in m and type(m["name"]) is not str:
        emit("wrong-type", f"messages[{i}].name", f"'name' must be a string, got {_typename(m['name'])}", None, "error")
        ok = False
    if "weight" in m:
        w = m["weight"]
        if type(w) not in (int, float) or w not in (0, 1):
            emit("invalid-weight", f"messages[{i}].weight", f"'weight' must be 0 or 1, got {w!r}"[:200], None, "error")
            return False, 0
        if role != "assistant":
            emit(
                "invalid-weight",
                f"messages[{i}].weight",
                "'weight' is only allowed on assistant messages",
                None,
                "error",
            )
            return False, 0
        if w == 0:
            return ok, 1
    return ok, 0


def _role_error(role: Any, i: int, emit: Emit) -> None:
    if role is None:
        emit("missing-field", f"messages[{i}].role", "missing required field 'role'", None, "error")
    else:
        emit(
            "unknown-role",
            f"messages[{i}].role",
            f"unknown role {role!r}"[:200],
            "roles are system, user and assistant",
            "error",
        )


def _content_error(m: dict, content: Any, i: int, emit: Emit) -> None:
    if content is None:
        if "content" in m:
            emit("wrong-type", f"messages[{i}].content", "'content' is null", "give every message text", "error")
        else:
            emit("missing-field", f"messages[{i}].content", "missing required field 'content'", None, "error")
    elif type(content) is not str:
        hint = (
            "multi-part (list) content is not supported for fine-tuning; use a string"
            if type(content) is list
            else None
        )
        emit(
            "wrong-type",
            f"messages[{i}].content",
            f"'content' must be a string, got {_typename(content)}",
            hint,
            "error",
        )
    else:
        emit("empty-value", f"messages[{i}].content", "'content' is empty", None, "error")


def _check_role_order(role: str | None, prev: str | None, i: int, emit: Emit) -> bool:
    """Whether the message may follow ``prev`` (a second message of the same role is only a warning)."""
    if role == "system" and i != 0:
        emit("role-order", f"messages[{i}].role", "a system message is only allowed first", None, "error")
        return False
    if role == "assistant" and prev in (None, "system") and i == (1 if prev == "system" else 0):
        emit(
            "role-order",
            f"messages[{i}].role",
            "the conversation starts with an assistant message",
            "start with a user message (after an optional system message)",
            "error",
        )
        return False
    if role is not None and role == prev and role != "system":
        emit(
            "role-order",
            f"messages[{i}].role",
            f"two {role} messages in a row",
            "merge them or put the other role between them",
            "warning",
        )
    return True


# --------------------------------------------------------------------------------------------------- field tasks


def _field(obj: dict, names: tuple[str, ...]) -> tuple[str, Any]:
    for n in names:
        if n in obj:
            return n, obj[n]
    return names[0], None


def _text(obj: dict, names: tuple[str, ...], emit: Emit, *, allow_empty: bool = False) -> str | None:
    name, v = _field(obj, names)
    if v is None:
        if name in obj:
            emit("wrong-type", name, f"{name!r} is null", None, "error")
        else:
            alt = f" (or {', '.join(repr(n) for n in names[1:])})" if len(names) > 1 else ""
            emit("missing-field", name, f"missing required field {name!r}{alt}", None, "error")
        return None
    if type(v) is not str:
        emit("wrong-type", name, f"{name!r} must be a string, got {_typename(v)}", None, "error")
        return None
    if not allow_empty and (not v or v.isspace()):
        emit("empty-value", name, f"{name!r} is empty", None, "error")
        return None
    return v


def _unknown(obj: dict, known: frozenset, emit: Emit) -> None:
    for key in obj:
        if key not in known:
            emit("unknown-field", key, f"unknown field {key!r} is ignored", None, "warning")


def _pair_task(
    inputs: tuple[tuple[str, ...], ...], outputs: tuple[tuple[str, ...], ...], *, empty_input_warns: bool = False
) -> Callable[[dict, Emit], Row | None]:
    known = frozenset(n for names in inputs + outputs for n in names)

    def check(obj: dict, emit: Emit) -> Row | None:
        _unknown(obj, known, emit)
        ins = []
        outs = []
        ok = True
        for names in inputs:
            v = _text(obj, names, emit, allow_empty=empty_input_warns)
            if v is None:
                ok = False
            else:
                if empty_input_warns and (not v or v.isspace()):
                    emit("empty-value", _field(obj, names)[0], f"{_field(obj, names)[0]!r} is empty", None, "warning")
                ins.append(v)
        for names in outputs:
            v = _text(obj, names, emit)
            if v is None:
                ok = False
            else:
                outs.append(v)
        if not ok:
            return None
        est_in = sum(estimate_tokens(t) for t in ins)
        est_out = sum(estimate_tokens(t) for t in outs)
        return Row(est_in + est_out + EST_TOKENS_PER_ROW, est_out, 0, None, None, tuple(ins), tuple(outs))

    return check


check_text_generation = _pair_task((("prompt",),), (("completion",),), empty_input_warns=True)
check_translation = _pair_task((("source",),), (("target",),))
check_summarization = _pair_task((("document", "article"),), (("summary", "highlights"),))

_CLS_KNOWN = frozenset(("text", "sentence", "label"))


def check_text_classification(obj: dict, emit: Emit) -> Row | None:
    _unknown(obj, _CLS_KNOWN, emit)
    text = _text(obj, ("text", "sentence"), emit)
    label = obj.get("label")
    if label is None:
        if "label" in obj:
            emit("wrong-type", "label", "'label' is null", None, "error")
        else:
            emit("missing-field", "label", "missing required field 'label'", None, "error")
        return None
    if type(label) not in (str, int) or (type(label) is str and (not label or label.isspace())):
        emit(
            "wrong-type",
            "label",
            f"'label' must be a non-empty string or an integer, got {_typename(label)}",
            None,
            "error",
        )
        return None
    if text is None:
        return None
    t = estimate_tokens(text)
    return Row(t + EST_TOKENS_PER_ROW, 0, 0, label, None, (text,), ())


_TOK_TAGS = ("tags", "ner_tags", "ner_tags_str")
_TOK_KNOWN = frozenset(("tokens",) + _TOK_TAGS)


def check_token_classification(obj: dict, emit: Emit) -> Row | None:
    _unknown(obj, _TOK_KNOWN, emit)
    ok = True
    tokens = obj.get("tokens")
    tag_name, tags = _field(obj, _TOK_TAGS)
    if tokens is None:
        emit("missing-field", "tokens", "missing required field 'tokens'", None, "error")
        ok = False
    elif type(tokens) is not list:
        emit("wrong-type", "tokens", f"'tokens' must be an array, got {_typename(tokens)}", None, "error")
        ok = False
    elif not tokens:
        emit("empty-value", "tokens", "'tokens' is empty", None, "error")
        ok = False
    else:
        for i, t in enumerate(tokens):
            if type(t) is not str:
                emit("wrong-type", f"tokens[{i}]", f"each token must be a string, got {_typename(t)}", None, "error")
                ok = False
                break
    if tags is None:
        emit("missing-field", tag_name, "missing required field 'tags' (or 'ner_tags')", None, "error")
        ok = False
    elif type(tags) is not list:
        emit("wrong-type", tag_name, f"{tag_name!r} must be an array, got {_typename(tags)}", None, "error")
        ok = False
    else:
        for i, t in enumerate(tags):
            if type(t) not in (str, int):
                emit(
                    "wrong-type",
                    f"{tag_name}[{i}]",
                    f"each tag must be a string or an integer, got {_typename(t)}",
                    None,
                    "error",
                )
                ok = False
                break
    if ok and len(tokens) != len(tags):
        emit(
            "length-mismatch",
            tag_name,
            f"{len(tokens)} tokens but {len(tags)} tags",
            "give exactly one tag per token",
            "error",
        )
        ok = False
    if not ok:
        return None
    text = " ".join(tokens)
    t = estimate_tokens(text)
    return Row(t + EST_TOKENS_PER_ROW, 0, 0, None, None, (text,), ())


_QA_KNOWN = frozenset(("question", "context", "answer", "answers", "id", "title"))


def _qa_answers(a: Any, emit: Emit, answers: list[tuple[str, str, Any]]) -> bool:
    """SQuAD-style `answers: {text: [...], answer_start: [...]}` into `answers`; False when a problem was emitted."""
    ok = True
    if type(a) is not dict or type(a.get("text")) is not list:
        emit(
            "wrong-type",
            "answers",
            '\'answers\' must be an object {"text": [...], "answer_start": [...]}',
            None,
            "error",
        )
        ok = False
    else:
        texts = a["text"]
        starts = a.get("answer_start")
        if starts is not None and (type(starts) is not list or len(starts) != len(texts)):
            emit(
                "length-mismatch",
                "answers.answer_start",
                "'answer_start' must list one offset per answer text",
                None,
                "error",
            )
            ok = False
            starts = None
        if not texts:
            emit("empty-value", "answers.text", "no answer text", None, "error")
            ok = False
        for i, t in enumerate(texts):
            if type(t) is not str or not t.strip():
                emit("wrong-type", f"answers.text[{i}]", "each answer must be a non-empty string", None, "error")
                ok = False
            else:
                answers.append((f"answers.text[{i}]", t, starts[i] if starts is not None else None))
    return ok


def check_question_answering(obj: dict, emit: Emit) -> Row | None:
    _unknown(obj, _QA_KNOWN, emit)
    question = _text(obj, ("question",), emit)
    context = _text(obj, ("context",), emit)
    answers: list[tuple[str, str, Any]] = []  # (field, text, start)
    ok = question is not None and context is not None
    if "answer" in obj:
        a = obj["answer"]
        if type(a) is not str or not a.strip():
            emit(
                "wrong-type" if type(a) is not str else "empty-value",
                "answer",
                f"'answer' must be a non-empty string, got {_typename(a)}",
                None,
                "error",
            )
            ok = False
        else:
            answers.append(("answer", a, None))
    elif "answers" in obj:
        ok = _qa_answers(obj["answers"], emit, answers) and ok
    else:
        emit("missing-field", "answer", "missing required field 'answer' (or SQuAD-style 'answers')", None, "error")
        ok = False
    if context is not None:
        for name, t, start in answers:
            if start is not None:
                if type(start) is not int or isinstance(start, bool) or context[start : start + len(t)] != t:
                    emit(
                        "answer-not-in-context",
                        name.replace("text", "answer_start"),
                        f"the context at offset {start!r} does not hold the answer"[:200],
                        "answer_start is a character offset into 'context'",
                        "error",
                    )
                    ok = False
            elif t not in context:
                emit(
                    "answer-not-in-context",
                    name,
                    "the answer does not occur in 'context'",
                    "extractive question answering needs the answer copied from the context",
                    "error",
                )
                ok = False
    if not ok:
        return None
    ins = (question, context)
    outs = tuple(t for _, t, _ in answers[:1])
    est_in = estimate_tokens(question) + estimate_tokens(context)
    est_out = sum(estimate_tokens(t) for t in outs)
    return Row(est_in + est_out + EST_TOKENS_PER_ROW, est_out, 0, None, None, ins, outs)


CHECKERS: dict[str, Callable[[dict, Emit], Row | None]] = {
    "chat-completion": check_chat,
    "text-generation": check_text_generation,
    "text-classification": check_text_classification,
    "token-classification": check_token_classification,
    "translation": check_translation,
    "question-answering": check_question_answering,
    "summarization": check_summarization,
}

# The fields that identify a task when --task is not given (first match wins).
_SIGNATURES = (
    ("chat-completion", ("messages",)),
    ("text-generation", ("prompt", "completion")),
    ("token-classification", ("tokens",)),
    ("question-answering", ("question", "context")),
    ("text-classification", ("label",)),
    ("translation", ("source", "target")),
    ("summarization", ("document",)),
    ("summarization", ("article",)),
)


def detect_task(obj: Any) -> str | None:
    """Guess the task from the fields of one row."""
    if not isinstance(obj, dict):
        return None
    for task, keys in _SIGNATURES:
        if all(k in obj for k in keys):
            return task
    return None


def normalize_task(task: str) -> str:
    from azft.errors import UsageError

    t = task.strip().lower().replace("_", "-")
    aliases = {
        "chat": "chat-completion",
        "chatcompletion": "chat-completion",
        "completion": "text-generation",
        "qa": "question-answering",
        "ner": "token-classification",
        "classification": "text-classification",
    }
    t = aliases.get(t.replace("-", ""), aliases.get(t, t))
    if t not in CHECKERS:
        raise UsageError(f"unknown task {task!r}", hint=f"choose one of: {', '.join(TASKS)}")
    return t
