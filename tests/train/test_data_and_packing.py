"""Loss masks (which tokens the model learns) and packing (examples stay independent)."""

from __future__ import annotations

import json

import pytest


def model_inputs(batch: dict) -> dict:
    """A collated batch without the counters the recipe's trainer reads (the model never sees them)."""
    return {k: v for k, v in batch.items() if k not in ("real_tokens", "example_lengths", "real_positions")}


IGNORE = -100


def trained_text(tokenizer, enc) -> str:
    ids = [i for i, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE]
    return tokenizer.decode(ids, skip_special_tokens=False)


def test_labels_cover_exactly_every_assistant_reply_and_its_end_token(recipe, tokenizer):
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And why is the sky blue?"},
        {"role": "assistant", "content": "Blue light scatters more."},
    ]
    msgs = recipe.data.row_to_messages({"messages": messages}, "chat-completion", "f.jsonl", 1)
    enc = recipe.data.encode_messages(tokenizer, msgs, max_seq_length=512)

    # the whole text is the Phi-3 chat format, as the tokenizer's own chat template renders it
    assert tokenizer.decode(enc.input_ids) == tokenizer.apply_chat_template(messages, tokenize=False)
    # trained tokens: both replies and their <|end|>, the final turn included; nothing else
    assert trained_text(tokenizer, enc) == "Paris.<|end|>Blue light scatters more.<|end|>"
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    ends = [i for i, t in enumerate(enc.input_ids) if t == end_id]
    assert len(ends) == 5  # system, user, assistant, user, assistant
    trained_ends = [i for i in ends if enc.labels[i] != IGNORE]
    assert trained_ends == [ends[2], ends[4]]  # the replies' ends, the final turn's included
    # where a label is set it is the token itself (the model shifts internally)
    assert all(lab in (IGNORE, tok) for tok, lab in zip(enc.input_ids, enc.labels))
    # the final eos and the newline after the last <|end|> are context, not targets
    assert enc.labels[-1] == IGNORE and enc.labels[-2] == IGNORE


def test_weight_zero_replies_are_not_trained(recipe, tokenizer):
    row = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bad answer.", "weight": 0},
            {"role": "user", "content": "Again"},
            {"role": "assistant", "content": "Good answer."},
        ]
    }
    enc = recipe.data.encode_messages(tokenizer, recipe.data.row_to_messages(row, "chat-completion", "f", 1), 512)
    assert trained_text(tokenizer, enc) == "Good answer.<|end|>"


@pytest.mark.parametrize(
    "task,row,answer",
    [
        ("text-generation", {"prompt": "Write a word:", "completion": "water"}, "water"),
        ("text-classification", {"text": "great screen", "label": "positive"}, "positive"),
        ("translation", {"source": "good morning", "target": "bonjour", "target_lang": "French"}, "bonjour"),
        ("summarization", {"document": "a long text about the sea", "summary": "the sea"}, "the sea"),
        ("question-answering", {"question": "Where?", "context": "In Paris.", "answers": {"text": ["Paris"]}}, "Paris"),
        ("token-classification", {"tokens": ["Paris", "is"], "tags": ["B-LOC", "O"]}, "Paris\tB-LOC\nis\tO"),
    ],
)
def test_other_tasks_become_prompts_with_loss_on_the_answer_only(recipe, tokenizer, task, row, answer):
    enc = recipe.data.encode_messages(tokenizer, recipe.data.row_to_messages(row, task, "f", 1), 512)
    assert trained_text(tokenizer, enc) == answer + "<|end|>"


def test_bad_rows_name_file_line_and_field(recipe, tokenizer, tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]})
        + "\n"
        + json.dumps({"messages": [{"role": "robot", "content": "hi"}]})
        + "\n"
    )
    with pytest.raises(recipe.data.DataFormatError) as e:
        recipe.data.encode_file(p, "chat-completion", tokenizer, 128)
    assert f"{p}:2" in str(e.value) and "messages[0].role" in str(e.value)


def test_truncation_keeps_masks_consistent(recipe, tokenizer):
    msgs = recipe.data.row_to_messages(
        {"messages": [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "reply " * 50}]},
        "chat-completion",
        "f",
        1,
    )
    enc = recipe.data.encode_messages(tokenizer, msgs, max_seq_length=80)
    assert enc.truncated and len(enc.input_ids) == len(enc.labels) == 80


def test_pack_rows_balances_and_respects_capacity(recipe):
    lengths = [120, 30, 200, 90, 17, 64, 250, 5]
    rows = recipe.data.pack_rows(lengths, 256)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    fills = [sum(lengths[i] for i in r) for r in rows]
    assert max(fills) <= 256
    assert len(rows) == -(-sum(lengths) // 256)  # as few rows as the tokens need


@pytest.mark.parametrize("attention", ["sdpa", "azft_packed_sdpa"])
def test_packed_batch_gives_the_same_per_example_loss_as_unpacked_examples(
    recipe, tokenizer, tiny_model, data_dir, attention
):
    import torch
    from transformers import AutoModelForCausalLM

    import ft_attention

    ft_attention.register()
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attention).eval()
    model.config.use_cache = False  # as in training: packed position ids are honoured only without a KV cache
    examples = recipe.data.encode_file(data_dir / "train.jsonl", "chat-completion", tokenizer, 256).examples[:6]

    def example_losses(logits, labels, spans):
        out = []
        for row, start, n in spans:
            lg = logits[row, start : start + n - 1]
            lb = labels[row, start + 1 : start + n]
            out.append(torch.nn.functional.cross_entropy(lg, lb, ignore_index=IGNORE, reduction="sum").item())
        return out

    with torch.no_grad():
        alone = []
        for ex in examples:
            ids = torch.tensor([ex["input_ids"]])
            logits = model(input_ids=ids).logits
            alone += example_losses(logits, torch.tensor([ex["labels"]]), [(0, 0, ids.shape[1])])

        batch = recipe.data.PackingCollator(tokenizer.pad_token_id, 256)(examples)
        assert batch["input_ids"].shape[0] < len(examples)  # several examples share a row
        assert "attention_mask" not in batch
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        spans = []
        for r in range(batch["position_ids"].shape[0]):
            pos = batch["position_ids"][r].tolist()
            starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
            for a, b in zip(starts, starts[1:]):
                spans.append((r, a, b - a))
        packed = {}
        for (r, a, n), loss in zip(spans, example_losses(logits, batch["labels"], spans)):
            key = tuple(batch["input_ids"][r, a : a + n].tolist())
            packed[key] = loss
    for ex, loss in zip(examples, alone):
        assert packed[tuple(ex["input_ids"])] == pytest.approx(loss, rel=1e-4, abs=1e-4)

    # and the batch-level loss is the unpadded mean over reply tokens
    pad = recipe.data.PaddingCollator(tokenizer.pad_token_id)(examples)
    with torch.no_grad():
        padded_loss = model(**model_inputs(pad)).loss.item()
        packed_loss = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"]
        ).loss.item()
    assert packed_loss == pytest.approx(padded_loss, rel=1e-4)
    assert int(batch["real_tokens"]) == int(pad["attention_mask"].sum())


@pytest.mark.parametrize("group_cost", [0, 10**12], ids=["a-group-per-length", "one-group"])
def test_packed_training_step_gives_the_same_gradients_as_padded_batches(
    recipe, tokenizer, tiny_model, data_dir, group_cost, monkeypatch
):
    """What training uses: the gradients of a packed step (rows end to end, per-example attention) equal a padded
    step's, so packing changes the speed of the run and not what it learns — however the attention groups the
    examples (one kernel call per group of similar lengths)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    import ft_attention
    import ft_trainer

    monkeypatch.setattr(ft_attention, "GROUP_COST", group_cost)
    examples = recipe.data.encode_file(data_dir / "train.jsonl", "chat-completion", tokenizer, 128).examples[:8]
    grads = {}
    for name, attention, batch in (
        ("packed", ft_attention.register(), recipe.data.PackingCollator(tokenizer.pad_token_id, 128)(examples)),
        ("padded", "sdpa", recipe.data.PaddingCollator(tokenizer.pad_token_id)(examples)),
    ):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attention)
        model.config.use_cache = False
        model = get_peft_model(
            model,
            LoraConfig(
                r=4,
                lora_alpha=8,
                lora_dropout=0.0,
                init_lora_weights=False,
                target_modules=["qkv_proj", "o_proj"],
                task_type="CAUSAL_LM",
            ),
        )
        batch = {k: v for k, v in batch.items() if k not in ft_trainer.COUNTER_KEYS}  # as the trainer passes it
        loss, count = ft_trainer.reply_loss_sum(model, batch)
        (loss / count).backward()
        grads[name] = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads["packed"].keys() == grads["padded"].keys()
    for n, g in grads["padded"].items():
        assert torch.allclose(grads["packed"][n], g, rtol=1e-3, atol=1e-6), n


def test_recipe_packed_loss_scores_only_reply_tokens_and_matches_the_padded_loss(
    recipe, tokenizer, tiny_model, data_dir
):
    """The recipe's training loss (rows end to end, LM head only at scored positions) equals the plain loss."""
    import torch
    from transformers import AutoModelForCausalLM

    import ft_attention

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=ft_attention.register()).eval()
    model.config.use_cache = False
    examples = recipe.data.encode_file(data_dir / "train.jsonl", "chat-completion", tokenizer, 128).examples[:8]
    packed = recipe.data.PackingCollator(tokenizer.pad_token_id, 128)(examples)
    assert packed["input_ids"].shape[0] > 1  # several rows, laid end to end by the loss
    padded = recipe.data.PaddingCollator(tokenizer.pad_token_id)(examples)
    import ft_trainer

    with torch.no_grad():
        loss_sum, scored = ft_trainer.reply_loss_sum(model, packed)
        got = loss_sum.item() / scored
        want = model(**model_inputs(padded)).loss.item()
    assert got == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("matmul_max", [512, 40, 0], ids=["matmul", "both-paths", "kernel"])
@pytest.mark.parametrize("window", [None, 24], ids=["causal", "sliding-window"])
def test_packed_attention_in_bf16_on_cpu_matches_fp32_per_example_attention(recipe, matmul_max, window, monkeypatch):
    """Under bf16 on a CPU the packed attention runs short groups as matmuls around an fp32 softmax and long ones in
    the fp32 kernel: its output and the gradients it sends back match each example's own fp32 causal attention to
    bf16 precision, whichever path each group takes."""
    import torch

    import ft_attention

    monkeypatch.setattr(ft_attention, "MATMUL_MAX", matmul_max)
    torch.manual_seed(0)
    lengths = [[50, 30, 20], [64, 9, 7, 12]]  # two packed rows of four groups' worth of lengths
    width = max(sum(r) for r in lengths)
    pos = torch.zeros(len(lengths), width, dtype=torch.long)
    for r, row in enumerate(lengths):
        c = 0
        for n in row + [width - sum(row)]:
            pos[r, c : c + n] = torch.arange(n)
            c += n
    heads, dim = 4, 16
    q, k, v = (torch.randn(len(lengths), heads, width, dim) for _ in range(3))
    leaves = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    ft_attention._cache[:] = [None, None]
    out, _ = ft_attention.packed_sdpa_attention(None, *leaves, None, sliding_window=window, position_ids=pos)
    assert out.dtype == torch.bfloat16 and out.shape == (len(lengths), width, heads, dim)
    grad_out = torch.randn_like(out, dtype=torch.float32)
    out.float().mul(grad_out).sum().backward()

    for r, row in enumerate(lengths):
        c = 0
        for n in row:
            ref_in = [t[r : r + 1, :, c : c + n].bfloat16().float().requires_grad_() for t in (q, k, v)]
            i = torch.arange(n)
            mask = (i[None, :] <= i[:, None]) & ((i[:, None] - i[None, :] < window) if window else True)
            ref = torch.nn.functional.scaled_dot_product_attention(*ref_in, attn_mask=mask).transpose(1, 2)
            got = out[r : r + 1, c : c + n].float()
            assert torch.allclose(got, ref, atol=3e-2, rtol=3e-2), (r, n)
            ref.mul(grad_out[r : r + 1, c : c + n]).sum().backward()
            for leaf, want in zip(leaves, ref_in):
                g = leaf.grad[r : r + 1, :, c : c + n].float()
                assert torch.allclose(g, want.grad, atol=6e-2, rtol=6e-2), (r, n)
            c += n
