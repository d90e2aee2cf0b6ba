"""Exact token counts with a real tokenizer (built locally) and the model's chat template."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from azft.data import check_file, load_tokenizer
from azft.data.tokens import TokenCounter

from .conftest import GOOD, build_tokenizer_dir, chat

ROWS = [
    GOOD,
    chat(
        ("user", "Bonjour, ça va? 東京は日本の首都です。"),
        ("assistant", "Très bien, merci!"),
        ("user", "And the fox?"),
        ("assistant", "The quick brown fox jumps over the lazy dog."),
    ),
    chat(("user", "x" * 300), ("assistant", "ok")),
]


@pytest.fixture(scope="module")
def hf_tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)


def test_exact_counts_match_transformers_apply_chat_template(write, tokenizer_dir, hf_tokenizer):
    report = check_file(write(ROWS), tokenizer=str(tokenizer_dir), max_tokens=60)
    s = report.stats
    assert s.token_count_exact and str(tokenizer_dir) in s.tokenizer
    want = [
        len(hf_tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"]) for r in ROWS
    ]
    assert s.tokens.total == sum(want) and s.tokens.min == min(want) and s.tokens.max == max(want)
    want_out = [
        sum(
            len(hf_tokenizer.encode(m["content"], add_special_tokens=False))
            for m in r["messages"]
            if m["role"] == "assistant"
        )
        for r in ROWS
    ]
    assert s.output_tokens.total == sum(want_out)
    over = [i + 1 for i, n in enumerate(want) if n > 60]
    assert [p.line for p in report.warnings if p.kind == "too-long"] == over
    assert "about" not in report.warnings[0].message


def test_tokenizer_object_and_exact_fields_for_other_tasks(write, hf_tokenizer):
    rows = [{"prompt": "The quick brown fox", "completion": " jumps over the lazy dog."}] * 2
    s = check_file(write(rows), "text-generation", tokenizer=hf_tokenizer).stats
    n_p = len(hf_tokenizer.encode(rows[0]["prompt"], add_special_tokens=False))
    n_c = len(hf_tokenizer.encode(rows[0]["completion"], add_special_tokens=False))
    assert s.token_count_exact and s.tokens.total == 2 * (n_p + n_c) and s.output_tokens.total == 2 * n_c


def test_template_that_rejects_a_row_is_an_error_with_its_line(write, tmp_path):
    d = build_tokenizer_dir(tmp_path / "strict")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["chat_template"] = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ m['content'] }}{% endfor %}"
    )
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    report = check_file(write([chat(("user", "q"), ("assistant", "a")), GOOD]), tokenizer=str(d))
    assert [(p.line, p.kind) for p in report.errors] == [(2, "template-error")]
    assert "System role not supported" in report.errors[0].message
    assert report.stats.valid_rows == 1


def test_missing_chat_template_falls_back_to_phi3(write, tmp_path):
    d = build_tokenizer_dir(tmp_path / "notemplate", with_template=False)
    s = check_file(write([GOOD]), tokenizer=str(d)).stats
    assert s.token_count_exact and "Phi-3's template" in s.tokenizer


def test_hub_id_loads_from_the_local_cache_only(write, tokenizer_dir, tmp_path):
    # Lay the tokenizer out as the Hugging Face cache does, then resolve it by hub id through from_pretrained.
    # A fresh interpreter, because huggingface_hub reads HF_HUB_CACHE once at import.
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-chat"
    shutil.copytree(tokenizer_dir, repo / "snapshots" / ("0" * 40))
    (repo / "snapshots" / ("0" * 40) / "config.json").write_text('{"model_type": "phi3"}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    p = write([GOOD])
    code = (
        "import json, sys; from azft.data import check_file, load_tokenizer\n"
        "a = load_tokenizer('acme/tiny-chat'); b = load_tokenizer('acme/not-cached')\n"
        f"s = check_file({str(p)!r}, tokenizer='acme/tiny-chat').stats\n"
        "print(json.dumps([a.spec is not None, a.note, b.spec is None, b.note, s.token_count_exact]))\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found, note, missing, missing_note, exact = json.loads(out.stdout.strip().splitlines()[-1])
    assert found and "local Hugging Face cache" in note
    assert missing and "estimate" in missing_note and "nothing is downloaded" in missing_note
    assert exact


def test_unusable_tokenizer_paths_fall_back_to_estimates(write, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "tokenizer.json").write_text("{not a tokenizer")
    for ref in (str(junk), str(tmp_path / "file.txt")):
        (tmp_path / "file.txt").write_text("x")
        s = check_file(write([GOOD]), tokenizer=ref).stats
        assert not s.token_count_exact and "estimate" in s.tokenizer


def test_counter_renders_like_the_phi3_format(tokenizer_dir):
    spec = load_tokenizer(str(tokenizer_dir)).spec
    text = TokenCounter(spec).render(GOOD["messages"])
    assert text == (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n<|endoftext|>"
    )


def test_exact_counts_in_two_worker_processes(write, tokenizer_dir, monkeypatch):
    import azft.data.check as check_mod

    rows = [
        chat(("user", f"question {i} " * (i % 7 + 1)), ("assistant", "Très bien " * (i % 5 + 1))) for i in range(400)
    ]
    p = write(rows)
    one = check_file(p, tokenizer=str(tokenizer_dir), workers=1).stats
    monkeypatch.setattr(check_mod, "PARALLEL_MIN_BYTES_EXACT", 0)
    two = check_file(p, tokenizer=str(tokenizer_dir), workers=2).stats
    assert two.workers == 2 and two.token_count_exact
    assert two.tokens == one.tokens and two.output_tokens == one.output_tokens


def test_tiny_phi3_model_uses_its_tokenizer(write, tmp_path, monkeypatch):
    pytest.importorskip("azft.tiny_phi3")
    s = check_file(write([GOOD]), model="tiny-phi3").stats
    assert s.context_length == 512
    assert s.token_count_exact
