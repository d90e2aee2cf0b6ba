"""``azft chat``: a conversation with a trained model, rendered with the chat template it was trained with.

``ChatSession`` keeps the turns and answers one user message at a time (greedy, KV cache); ``chat_loop`` reads lines
from a terminal (with readline editing and history) or from piped stdin, and knows ``/exit``, ``/reset`` and
``/help``. End of input and Ctrl-C end the conversation quietly.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, TextIO

from azft.trained.generate import Generation, generate, prompt_ids
from azft.trained.job import TrainedModel


class Conversation(Protocol):
    """What ``chat_loop`` drives: a local ``ChatSession`` or a deployed endpoint's (``azft.deploy.chat``)."""

    dropped_turns: int
    max_length: int

    def reset(self) -> None: ...

    def reply(self, text: str) -> Generation: ...


HELP = "/reset starts a new conversation · /exit (or Ctrl-D) ends it · /help shows this"


@dataclass
class ChatSession:
    """The conversation so far and the model answering it."""

    model: object
    tokenizer: object
    system: Optional[str] = None
    max_new_tokens: int = 256
    max_length: int = 2048
    messages: list[dict] = field(default_factory=list)
    dropped_turns: int = 0

    def __post_init__(self) -> None:
        self.reset()

    @classmethod
    def for_job(
        cls, tm: TrainedModel, *, base: bool = False, system: Optional[str] = None, max_new_tokens: int = 256
    ) -> "ChatSession":
        return cls(
            tm.load(base=base),
            tm.tokenizer(),
            system=system,
            max_new_tokens=max_new_tokens,
            max_length=tm.max_seq_length,
        )

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def _fitted_ids(self) -> list[int]:
        """The conversation's token ids, oldest turns dropped (the system message kept) until the reply fits in the
        model's trained length."""
        budget = max(1, self.max_length - self.max_new_tokens)
        ids = prompt_ids(self.tokenizer, self.messages)
        head = 1 if self.system else 0
        while len(ids) > budget and len(self.messages) - head > 1:
            # drop the oldest user turn and the reply that followed it
            drop = 2 if len(self.messages) - head > 2 else 1
            del self.messages[head : head + drop]
            self.dropped_turns += drop
            ids = prompt_ids(self.tokenizer, self.messages)
        return ids

    def reply(self, text: str) -> Generation:
        self.messages.append({"role": "user", "content": text})
        ids = self._fitted_ids()
        gen = generate(
            self.model,
            self.tokenizer,
            [ids],
            max_new_tokens=self.max_new_tokens,
            batch_size=1,
            max_length=self.max_length,
        )[0]
        self.messages.append({"role": "assistant", "content": gen.text})
        return gen


def iter_lines(stdin: TextIO, prompt: str):
    """User lines: ``input()`` with readline on a terminal, plain lines from a pipe. Stops at end of input."""
    if stdin.isatty():
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:  # pragma: no cover - platforms without readline
            pass
        while True:
            try:
                yield input(prompt)
            except EOFError:
                print(file=sys.stderr)
                return
    else:
        for line in stdin:
            yield line.rstrip("\r\n")


def chat_loop(
    session: Conversation,
    *,
    stdin: TextIO,
    emit: Callable[[str, Generation], None],
    note: Callable[[str], None],
    prompt: str = "you> ",
) -> int:
    """Answer each line until /exit, end of input or Ctrl-C; returns the number of replies."""
    replies = 0
    lines = iter_lines(stdin, prompt)
    try:
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            command = line.lower()
            if command in ("/exit", "/quit"):
                break
            if command == "/reset":
                session.reset()
                note("(new conversation)")
                continue
            if command in ("/help", "/?"):
                note(HELP)
                continue
            before = session.dropped_turns
            gen = session.reply(line)
            if session.dropped_turns > before:
                note(f"(the oldest turns no longer fit in {session.max_length} tokens and were dropped)")
            emit(line, gen)
            replies += 1
    except KeyboardInterrupt:
        note("")
    return replies
