"""Local plans estimate time from this machine's measured tokens/s (cached under AZFT_HOME after a completed local
run), and before any run from a default labelled as a guess. The real recording by a completed job is asserted in
tests/train/test_local_backend.py (it reuses that test's training run)."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLES


def _estimate(run_cli, tmp_path):
    import json

    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\nmodel: tiny-phi3\ndata: {{train: {EXAMPLES / 'data' / 'chat_train.jsonl'}}}\n")
    res = run_cli("plan", str(spec), "--backend", "local", "--output", "json")
    assert res.code == 0, res.text
    return json.loads(res.out)["estimate"]


def test_before_any_run_the_speed_is_a_stated_guess(run_cli, tmp_path, _azft_home):
    e = _estimate(run_cli, tmp_path)
    assert e["tokens_per_second_source"].startswith("a guess")
    assert str(_azft_home / ".azft" / "throughput.json") in e["tokens_per_second_source"]  # where it will be kept
    assert e["hours"] == pytest.approx(e["training_tokens_total"] / e["tokens_per_second"] / 3600, abs=1e-3)


def test_after_a_run_the_measured_speed_is_used_and_named(run_cli, tmp_path, monkeypatch):
    from azft import throughput

    config = throughput.key("tiny-phi3", "lora", throughput.device_of("auto"), 1)
    assert throughput.record(config, 123.4, "tiny-abc", "2026-12-04T10:00:00Z")
    assert not throughput.record(config, 99.0, "tiny-abc", "2026-12-04T10:00:00Z")  # once per job
    e = _estimate(run_cli, tmp_path)
    assert e["tokens_per_second"] == 123.4
    assert e["tokens_per_second_source"].startswith("measured on this machine by local job tiny-abc")
    assert e["hours"] == pytest.approx(e["training_tokens_total"] / 123.4 / 3600, abs=1e-3)
    # another configuration has not been measured: still a guess
    other = throughput.local_speed("tiny-phi3", "dora", throughput.device_of("auto"), 1, 0.001)
    assert other[1].startswith("a guess")
