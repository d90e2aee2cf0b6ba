"""The chat-completions request and response shapes (OpenAI's ``POST /v1/chat/completions``, which Azure's
serverless endpoints also serve), checked and built in one place for every server azft runs or emulates.

``parse_request(body)`` returns the checked request or raises ``ChatRequestError`` naming the field, as an
OpenAI-compatible server answers (HTTP 400, ``{"error": {"message", "type": "invalid_request_error", "param",
"code"}}``). ``response(...)`` builds the answer body with its ``usage`` counts. Azure ML's managed online endpoints
take the chat-completion scoring shape of Azure's MLflow chat models instead (``{"input_data": {"input_string":
[messages], "parameters": {...}}}`` answered by ``{"output": text}``); ``parse_request`` accepts both and says which.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 256
MAX_CONTENT_CHARS = 200_000
MAX_NEW_TOKENS = 4096


class ChatRequestError(ValueError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message, self.param = message, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": "invalid_request_error", "param": self.param, "code": None}}


@dataclass
class ChatRequest:
    messages: list[dict[str, str]]
    max_tokens: int = 64
    temperature: float = 0.0
    model: str | None = None
    #: "chat" (chat-completions shape) or "score" (Azure ML's input_data shape)
    shape: str = "chat"
    extra: dict[str, Any] = field(default_factory=dict)


def _number(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise ChatRequestError(f"'{name}' must be {kind} between {lo:g} and {hi:g}", name)
    return value


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ChatRequestError(f"'{where}' must be a non-empty array of messages", where)
    if len(value) > MAX_MESSAGES:
        raise ChatRequestError(f"'{where}' holds more than {MAX_MESSAGES} messages", where)
    out = []
    for i, m in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(m, dict):
            raise ChatRequestError(f"'{at}' must be an object with 'role' and 'content'", at)
        if m.get("role") not in ROLES:
            raise ChatRequestError(f"'{at}.role' must be one of {', '.join(ROLES)}", f"{at}.role")
        content = m.get("content")
        if not isinstance(content, str):
            raise ChatRequestError(f"'{at}.content' must be a string", f"{at}.content")
        if len(content) > MAX_CONTENT_CHARS:
            raise ChatRequestError(f"'{at}.content' is longer than {MAX_CONTENT_CHARS} characters", f"{at}.content")
        out.append({"role": m["role"], "content": content})
    if out[-1]["role"] != "user":
        raise ChatRequestError(f"the last message of '{where}' must be the user's", where)
    return out


def parse_request(body: Any) -> ChatRequest:
    """A checked chat request from a JSON body (chat-completions or Azure ML's ``input_data`` scoring shape)."""
    if not isinstance(body, dict):
        raise ChatRequestError("the request body must be a JSON object")
    if "input_data" in body:
        data = body["input_data"]
        if not isinstance(data, dict):
            raise ChatRequestError("'input_data' must be an object", "input_data")
        params = data.get("parameters") or {}
        if not isinstance(params, dict):
            raise ChatRequestError("'input_data.parameters' must be an object", "input_data.parameters")
        req = ChatRequest(_messages(data.get("input_string"), "input_data.input_string"), shape="score")
        src, prefix = params, "input_data.parameters."
        tokens_key = "max_new_tokens" if "max_new_tokens" in params else "max_tokens"
    else:
        if body.get("stream"):
            raise ChatRequestError("'stream' is not supported by this server", "stream")
        req = ChatRequest(_messages(body.get("messages"), "messages"))
        src, prefix, tokens_key = body, "", "max_tokens"
        if body.get("model") is not None and not isinstance(body["model"], str):
            raise ChatRequestError("'model' must be a string", "model")
        req.model = body.get("model")
        if body.get("n", 1) != 1:
            raise ChatRequestError("'n' must be 1", "n")
    if src.get(tokens_key) is not None:
        req.max_tokens = _number(src[tokens_key], prefix + tokens_key, 1, MAX_NEW_TOKENS, integer=True)
    if src.get("temperature") is not None:
        req.temperature = float(_number(src["temperature"], prefix + "temperature", 0, 2))
    return req


def response(
    req: ChatRequest, text: str, *, model: str, prompt_tokens: int, completion_tokens: int, finish_reason: str
) -> dict[str, Any]:
    """The answer body for ``req``'s shape."""
    if req.shape == "score":
        return {"output": text}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def reply_text(body: Any) -> str:
    """The assistant's text from either answer shape (a client's side of the same contract)."""
    if isinstance(body, dict):
        if isinstance(body.get("output"), str):
            return body["output"]
        try:
            return str(body["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            pass
    if isinstance(body, list) and body and isinstance(body[0], dict) and "0" in body[0]:
        return str(body[0]["0"])
    raise ValueError("the endpoint's answer has neither choices[0].message.content nor output")
