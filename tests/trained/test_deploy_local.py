"""`azft deploy JOB` on a local job: the real chat-completions server on 127.0.0.1 serving the tiny-phi3 job the
session fixture trained, called with plain HTTP as an OpenAI-style client would, then through `azft predict
--endpoint`; TTL expiry under a controlled clock (``AZFT_NOW``) stops it and warns."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import requests

CHAT = {"model": "x", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 8}


def _azft(home, *args, now=None, stdin=None):
    env = {**os.environ, "AZFT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    if now:
        env["AZFT_NOW"] = now
    return subprocess.run(
        [sys.executable, "-m", "azft", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        input=stdin,
    )


def test_local_server_answers_chat_completions_and_expires(at_home, tmp_path):
    home, job = at_home
    res = _azft(home, "deploy", job, "--ttl", "1h", "--name", "tiny-ep", "--output", "json", now="2026-12-05T08:00:00Z")
    assert res.returncode == 0, res.stdout + res.stderr
    dep = json.loads(res.stdout)
    try:
        assert dep["url"].startswith("http://127.0.0.1:") and dep["hourly_usd"] == 0.0 and "key" not in dep
        key = (home / ".azft" / "deployments" / "tiny-ep" / "key").read_text().strip()
        assert oct((home / ".azft" / "deployments" / "tiny-ep" / "key").stat().st_mode & 0o777) == "0o600"
        assert requests.post(dep["url"], json=CHAT, timeout=60).status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        a = requests.post(dep["url"], json=CHAT, headers=auth, timeout=120)
        assert a.status_code == 200, a.text
        body = a.json()
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
        assert 0 < body["usage"]["completion_tokens"] <= 8 and body["usage"]["prompt_tokens"] > 0
        again = requests.post(dep["url"], json=CHAT, headers=auth, timeout=120).json()
        assert again["choices"][0]["message"]["content"] == body["choices"][0]["message"]["content"]  # greedy
        bad = requests.post(dep["url"], json={"messages": []}, headers=auth, timeout=60)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"

        prompts = tmp_path / "p.jsonl"
        prompts.write_text(json.dumps({"messages": CHAT["messages"]}) + "\n")
        out = tmp_path / "o.jsonl"
        res = _azft(
            home,
            "predict",
            "--endpoint",
            "tiny-ep",
            "--data",
            str(prompts),
            "--out",
            str(out),
            "--max-new-tokens",
            "8",
            now="2026-12-05T08:10:00Z",
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert json.loads(out.read_text())["response"] == body["choices"][0]["message"]["content"]
        assert key not in res.stdout + res.stderr

        # azft chat --endpoint: the same greedy answer as the plain HTTP call, twice across a /reset
        question = CHAT["messages"][0]["content"]
        res = _azft(
            home,
            "chat",
            "--endpoint",
            "tiny-ep",
            "--max-new-tokens",
            "8",
            "-o",
            "json",
            now="2026-12-05T08:12:00Z",
            stdin=f"{question}\n/reset\n{question}\n",
        )
        assert res.returncode == 0, res.stdout + res.stderr
        replies = [json.loads(line) for line in res.stdout.splitlines()]
        assert [r["assistant"] for r in replies] == [body["choices"][0]["message"]["content"]] * 2
        assert key not in res.stdout + res.stderr

        # azft eval JOB --endpoint: the validation samples answered by the server, next to their references
        res = _azft(
            home,
            "eval",
            job,
            "--endpoint",
            "tiny-ep",
            "--samples",
            "2",
            "--max-new-tokens",
            "8",
            "-o",
            "json",
            now="2026-12-05T08:14:00Z",
        )
        assert res.returncode == 0, res.stdout + res.stderr
        ev = json.loads(res.stdout)
        assert ev["endpoint"] == "tiny-ep" and ev["data"].endswith("chat_val.jsonl") and len(ev["samples"]) == 2
        assert all(s["reference"] and s["fine-tuned"] for s in ev["samples"])

        listed = json.loads(_azft(home, "endpoints", "list", "-o", "json", now="2026-12-05T08:30:00Z").stdout)
        assert listed[0]["name"] == "tiny-ep" and listed[0]["age"] == "30m" and listed[0]["last_call_at"]
        assert listed[0]["cost_so_far_usd"] == 0.0 and not listed[0]["expired"]
    finally:
        # past the TTL: the next command (any) stops the server and says so
        res = _azft(home, "endpoints", "list", "-o", "json", now="2026-12-05T09:00:01Z")
    assert "tiny-ep" in res.stderr and "passed its TTL of 1h" in res.stderr and "deleted" in res.stderr
    assert json.loads(res.stdout) == []
    try:
        requests.post(dep["url"], json=CHAT, headers=auth, timeout=5)
        raise AssertionError("the server still answers after its TTL")
    except requests.ConnectionError:
        pass
