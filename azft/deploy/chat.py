"""``azft chat --endpoint NAME``: the same conversation loop as a local ``azft chat`` (``azft.trained.chat``), each
reply from a deployed endpoint (``azft.deploy.client``: key from the record or Azure, azure-core retries)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from azft.trained.generate import Generation


@dataclass
class EndpointChat:
    """The conversation so far, answered by an endpoint; the interface ``chat_loop`` drives."""

    endpoint: Any  # azft.deploy.client.Endpoint
    system: Optional[str] = None
    max_new_tokens: int = 256
    messages: list[dict] = field(default_factory=list)
    dropped_turns: int = 0  # the endpoint holds its own context limit; nothing is dropped here
    max_length: int = 0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def reply(self, text: str) -> Generation:
        self.messages.append({"role": "user", "content": text})
        try:
            answer, raw = self.endpoint.chat(self.messages, max_tokens=self.max_new_tokens)
        except BaseException:
            self.messages.pop()  # the turn did not happen: the conversation stays as it was
            raise
        self.messages.append({"role": "assistant", "content": answer})
        usage = raw.get("usage") or {}
        finish = ((raw.get("choices") or [{}])[0] or {}).get("finish_reason") or "stop"
        return Generation(answer, int(usage.get("completion_tokens") or 0), str(finish))
