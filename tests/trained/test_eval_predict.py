"""azft eval / predict on a local job trained for a few steps (tiny-phi3, the quickstart's data)."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_eval_base_vs_tuned_report_logged_to_the_run(at_home, run_cli):
    home, name = at_home
    r = run_cli("eval", name, "--base", "--samples", "3", "--max-new-tokens", "12", "--output", "json")
    assert r.code == 0, r.text
    res = json.loads(r.out)
    base, tuned = res["models"]["base"], res["models"]["fine-tuned"]
    assert res["data"].endswith("chat_val.jsonl") and res["split"] == "validation"
    assert tuned["loss"] < base["loss"] - 0.3  # training on the quickstart data lowered the assistant-token loss
    assert tuned["target_tokens"] == base["target_tokens"] > 0 and tuned["rows"] == 40
    assert len(res["samples"]) == 3
    assert all(s["prompt"] and s["reference"] and "base" in s and "fine-tuned" in s for s in res["samples"])
    report = Path(res["saved"]["dir"], "report.md").read_text()
    assert "| base |" in report and "| fine-tuned |" in report and "## Samples" in report

    # deterministic: the same command gives the same numbers and generations
    again = json.loads(run_cli("eval", name, "--samples", "3", "--max-new-tokens", "12", "-o", "json").out)
    assert again["models"]["fine-tuned"] == tuned
    assert [s["fine-tuned"] for s in again["samples"]] == [s["fine-tuned"] for s in res["samples"]]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / '.azft' / 'mlflow.db'}")
    run = client.get_run(res["saved"]["mlflow_run_id"])
    assert abs(run.data.metrics["eval_base_loss"] - base["loss"]) < 1e-9
    assert abs(run.data.metrics["eval_tuned_loss"] - tuned["loss"]) < 1e-9
    # the same masks as training: the recipe's own validation loss of the final weights (packed rows there, padded
    # rows here: measured 1.0e-4 apart at a loss of 5.9, i.e. 2e-5 relative)
    assert abs(run.data.metrics["eval_loss"] - tuned["loss"]) < 1e-4 * tuned["loss"]
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert logged == {"evaluation/eval.json", "evaluation/report.md"}


def test_eval_table_and_bad_data(at_home, run_cli, tmp_path):
    _, name = at_home
    r = run_cli("eval", name, "--samples", "1", "--max-new-tokens", "4")
    assert r.code == 0, r.text
    assert "fine-tuned" in r.out and "perplexity" in r.out and "report.md" in r.out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        '{"messages": [{"role": "robot", "content": "x"}]}\n'
    )
    r = run_cli("eval", name, "--data", str(bad))
    assert r.code == 2 and "bad.jsonl:2" in r.err and "role" in r.err and "Traceback" not in r.text
    r = run_cli("eval", "no-such-job")
    assert r.code == 2 and "no-such-job" in r.err


def test_predict_jsonl_in_order_matches_one_by_one(at_home, run_cli, tmp_path):
    _, name = at_home
    rows = [json.loads(line) for line in (EXAMPLES / "data" / "chat_val.jsonl").read_text().splitlines()[:6]]
    src = tmp_path / "in.jsonl"
    with src.open("w") as f:
        for i, row in enumerate(rows):
            msgs = [m for m in row["messages"] if m["role"] != "assistant"]
            f.write(json.dumps({"messages": msgs} if i % 2 else {"prompt": msgs[-1]["content"]}) + "\n")
    out = tmp_path / "out.jsonl"
    r = run_cli("predict", name, "--data", str(src), "--out", str(out), "--batch-size", "4", "--max-new-tokens", "10")
    assert r.code == 0, r.text
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["line"] for g in got] == [1, 2, 3, 4, 5, 6]
    assert all(g["finish_reason"] in ("stop", "length") and g["completion_tokens"] <= 10 for g in got)

    # batched (left padding, KV cache) answers exactly as model.generate one prompt at a time
    from azft.trained.generate import generate_one_by_one, prompt_ids, read_prompts
    from azft.trained.job import TrainedModel

    tm = TrainedModel.from_job(name)
    tok, model = tm.tokenizer(), tm.load()
    ids = [prompt_ids(tok, p.messages) for p in read_prompts(str(src), tm.task)]
    assert [g.text for g in generate_one_by_one(model, tok, ids, max_new_tokens=10)] == [g["response"] for g in got]


def test_evaluate_generations_from_a_prompt_only_model(tmp_path):
    """The endpoint path's report: any callable answering conversations (here a stand-in for a deployed endpoint,
    which this test has none of) gives side-by-side samples and a Markdown report without a loss."""
    from azft.trained.evaluate import evaluate_generations, markdown_report

    seen = []

    def answer(conversations):
        seen.extend(conversations)
        return [f"reply to {c[-1]['content'][:10]}" for c in conversations]

    res = evaluate_generations(str(EXAMPLES / "data" / "chat_val.jsonl"), "chat-completion", answer, job="j", samples=2)
    assert len(seen) == 2 and all(c[-1]["role"] == "user" for c in seen)
    assert [s["line"] for s in res["samples"]] == [1, 2] and all(s["reference"] for s in res["samples"])
    assert res["samples"][0]["fine-tuned"].startswith("reply to ") and res["models"] == {}
    report = markdown_report(res)
    assert "## Samples" in report and "| fine-tuned |" in report and "None" not in report
