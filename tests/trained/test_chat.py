"""azft chat on the local job trained for a few steps: piped stdin, /reset, /exit, end of input."""

from __future__ import annotations

import io
import json


def test_chat_piped_reset_exit_and_determinism(at_home, run_cli, monkeypatch):
    _, name = at_home
    script = "How do I reset my password?\n/reset\n\nHow do I reset my password?\n/help\n/exit\nnever read\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    r = run_cli("chat", name, "--max-new-tokens", "8", "--output", "json")
    assert r.code == 0, r.text
    turns = [json.loads(line) for line in r.out.splitlines()]
    assert [t["user"] for t in turns] == ["How do I reset my password?"] * 2  # /exit stopped before "never read"
    assert all(0 < t["tokens"] <= 8 and t["finish_reason"] in ("stop", "length") for t in turns)
    # after /reset the same question in a fresh conversation gets the same greedy answer
    assert turns[0]["assistant"] == turns[1]["assistant"]
    assert "(new conversation)" in r.err and "/exit" in r.err and "Traceback" not in r.text

    # end of input without /exit: a clean exit, plain replies one per line
    monkeypatch.setattr("sys.stdin", io.StringIO("How do I reset my password?"))
    r = run_cli("chat", name, "--max-new-tokens", "8")
    assert r.code == 0 and r.out.strip() == turns[0]["assistant"] and "Traceback" not in r.text


def test_chat_drops_oldest_turns_when_too_long(at_home):
    from azft.trained.chat import ChatSession
    from azft.trained.job import TrainedModel

    tm = TrainedModel.from_job(at_home[1])
    session = ChatSession(tm.load(), tm.tokenizer(), system="Be brief.", max_new_tokens=4, max_length=64)
    for _ in range(4):
        session.reply("Tell me about shipping times for an order to Canada, please.")
    assert session.dropped_turns > 0 and session.messages[0] == {"role": "system", "content": "Be brief."}
    assert session.messages[-1]["role"] == "assistant"
