"""Every refusal, on every backend, ends with what works instead; a model that never had a serverless offer is not
told to force one."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLES

DATA = EXAMPLES / "data" / "chat_train.jsonl"


def _plan(tmp_path, backend: str, body: str):
    from azft import api

    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ndata: {{train: {DATA}}}\n" + body)
    return api.plan(str(path), backend)


@pytest.mark.parametrize("backend", ["maas", "mock"])
def test_tiny_phi3_on_serverless_points_to_local_and_mock_not_allow_unavailable(tmp_path, backend):
    p = _plan(tmp_path, backend, "model: tiny-phi3\n")
    assert not p.ok
    text = " ".join(p.verdict.reasons + p.verdict.alternatives)
    assert "allow_unavailable" not in text
    assert any(a.startswith("--backend local") for a in p.verdict.alternatives)
    assert any(a.startswith("--backend mock with model: phi-4-mini-instruct") for a in p.verdict.alternatives)
    # and forcing it does not turn the refusal into a warning: no workspace ever offered it
    forced = _plan(tmp_path, backend, "model: tiny-phi3\nmaas: {allow_unavailable: true}\n")
    assert not forced.ok


def test_the_mocks_refusal_is_the_serverless_one(tmp_path):
    maas = _plan(tmp_path, "maas", "model: phi-3-mini-4k-instruct\n")
    mock = _plan(tmp_path, "mock", "model: phi-3-mini-4k-instruct\n")
    assert not maas.ok and not mock.ok
    assert mock.verdict.reasons == maas.verdict.reasons and mock.verdict.alternatives == maas.verdict.alternatives
    assert "allow_unavailable" in maas.verdict.reasons[0]  # a retired offer may still be open in a workspace


@pytest.mark.parametrize(
    "backend,body",
    [
        ("maas", "model: tiny-phi3\n"),
        ("maas", "model: phi-3-mini-4k-instruct\n"),
        ("maas", "model: phi-4-mini-instruct\ntask: summarization\n"),
        ("maas", "model: phi-4-mini-instruct\nmethod: qlora\n"),
        ("mock", "model: tiny-phi3\n"),
        ("maap", "model: tiny-phi3\n"),
        ("maap", "model: phi-3-mini-4k-instruct\n"),
        ("local", "model: tiny-phi3\nmethod: qlora\n"),
        ("local", "model: tiny-phi3\nlora: {target_modules: [q_proj]}\n"),
        ("local", "model: tiny-phi3\nlocal: {num_processes: 64}\n"),
        ("local", "model: tiny-phi3\nhyperparameters: {max_seq_length: 100000}\n"),
        ("local", "model: tiny-phi3\ncompute: {instance_count: 2}\n"),
    ],
)
def test_every_refusal_says_what_works_instead(tmp_path, backend, body):
    p = _plan(tmp_path, backend, body)
    assert not p.ok, body
    assert p.verdict.alternatives, f"{backend}: refused without an alternative: {p.verdict.reasons}"
