"""`azft eval`, `azft predict`, `azft export`: a finished job's model, judged and used here. Loaded on use; torch,
transformers and peft are imported only inside the commands."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import click

OUTPUTS = ("table", "json")


def _trained(job: str):
    from azft.trained.job import TrainedModel

    return TrainedModel.from_job(job)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """While a trained model runs here: transformers' info logs and progress bars, FutureWarnings and the
    tokenizers fork notice off; all restored after (the command may run inside a longer-lived Python process)."""
    import os
    import warnings

    added = [] if "TOKENIZERS_PARALLELISM" in os.environ else ["TOKENIZERS_PARALLELISM"]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if not torch.cuda.is_available() and "DS_ACCELERATOR" not in os.environ:
        os.environ["DS_ACCELERATOR"] = "cpu"  # deepspeed (imported by peft's merge) otherwise prints to stdout
        added.append("DS_ACCELERATOR")
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
        for name in added:
            os.environ.pop(name, None)


@click.command(name="eval")
@click.argument("job")
@click.option(
    "--data",
    type=click.Path(),
    default=None,
    help="Held-out JSONL in the job's task format (default: the job's validation file); on maap also an "
    "azureml:// URI.",
)
@click.option("--base", is_flag=True, help="Also evaluate the base model on the same data, side by side (local jobs).")
@click.option(
    "--endpoint",
    default=None,
    metavar="NAME",
    help="Answer the samples with this deployment (`azft endpoints list`); the default for a serverless "
    "job with one live deployment.",
)
@click.option(
    "--samples",
    type=click.IntRange(0, 1000),
    default=4,
    show_default=True,
    help="Greedy generations shown next to their references.",
)
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=48, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option(
    "--max-rows",
    type=click.IntRange(0, 10_000_000),
    default=0,
    show_default=True,
    help="maap: evaluate at most this many rows (0: all).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),
    default=None,
    help="Where eval.json and report.md go (default: the job's folder, evaluation/).",
)
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def eval_(
    job: str,
    data: Optional[str],
    base: bool,
    endpoint: Optional[str],
    samples: int,
    max_new_tokens: int,
    batch_size: int,
    max_rows: int,
    out_dir: Optional[str],
    output: str,
) -> int:
    """Loss and perplexity on the assistant tokens, and greedy samples (prompt, reference, base, fine-tuned);
    eval.json and a Markdown report, logged to the job's MLflow run. A maap job is evaluated on its cluster (the
    evaluate component, submitted as a job); a deployed model through its endpoint (samples, no loss)."""
    from azft.deploy.evaluate import remote_target

    target = remote_target(job, endpoint)
    if target == "maap" and not endpoint:
        return _eval_on_cluster(job, data, base, samples, max_new_tokens, batch_size, max_rows, output)
    if target is not None:
        return _eval_endpoint(job, target, data, base, endpoint, samples, max_new_tokens, out_dir, output)
    from azft.trained.evaluate import evaluate, save_and_log

    tm = _trained(job)
    with _quiet():
        result = evaluate(
            tm, data=data, base=base, samples=samples, max_new_tokens=max_new_tokens, batch_size=batch_size
        )
        where = Path(out_dir) if out_dir else tm.model_dir.parent / "evaluation"
        result["saved"] = save_and_log(tm, result, where)
    if output == "json":
        click.echo(json.dumps(result, indent=2))
        return 0
    _print_eval(result)
    return 0


def _eval_on_cluster(
    job: str,
    data: Optional[str],
    base: bool,
    samples: int,
    max_new_tokens: int,
    batch_size: int,
    max_rows: int,
    output: str,
) -> int:
    from azft.errors import UsageError
    from azft.deploy.evaluate import submit_cluster_eval

    if base:
        raise UsageError(
            "--base compares with the base model here, for local jobs; a maap job's evaluation runs "
            "the fine-tuned model on its cluster",
            hint="the base model's loss: train a job with max_steps: 0, or evaluate it locally",
        )
    res = submit_cluster_eval(
        job, data=data, samples=samples, max_new_tokens=max_new_tokens, batch_size=batch_size, max_rows=max_rows
    )
    if output == "json":
        click.echo(json.dumps(res, indent=2))
        return 0
    name = res["evaluation_job"]
    verb = "submitted" if res["submitted"] else "already submitted (same job and settings)"
    click.echo(f"evaluation job {name} {verb}, on cluster {res['compute']}")
    click.echo(f"  model: {res['trained_model']}")
    click.echo(f"  data:  {res['data']}")
    click.echo(
        f"next: azft wait {name}; azft logs {name} (the step logs eval_loss, perplexity and the samples to its run)"
    )
    return 0


def _eval_endpoint(
    job: str,
    target: str,
    data: Optional[str],
    base: bool,
    endpoint: Optional[str],
    samples: int,
    max_new_tokens: int,
    out_dir: Optional[str],
    output: str,
) -> int:
    from azft.errors import UsageError
    from azft.deploy.evaluate import evaluate_through_endpoint

    if base:
        raise UsageError("--base needs the base model's weights here; an endpoint serves only the fine-tuned model")
    result = evaluate_through_endpoint(
        job, target, endpoint, data=data, samples=samples, max_new_tokens=max_new_tokens, out_dir=out_dir
    )
    if output == "json":
        click.echo(json.dumps(result, indent=2))
        return 0
    _print_eval(result)
    return 0


def _print_eval(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False, soft_wrap=True)
    if result["models"]:
        t = Table(title=f"{result['job']} on {result['data']} ({result['split']})")
        for col in ("model", "loss", "perplexity", "rows", "target tokens"):
            t.add_column(col, justify="left" if col == "model" else "right")
        for kind, m in result["models"].items():
            t.add_row(kind, f"{m['loss']:.4f}", f"{m['perplexity']:.2f}", str(m["rows"]), str(m["target_tokens"]))
        con.print(t)
    else:
        con.print(
            f"{result['job']} through endpoint {result.get('endpoint')} on {result['data']}: samples only "
            "(an endpoint returns no log-probabilities of the references, so no loss)"
        )
    if "loss_change" in result:
        con.print(f"fine-tuning changed the loss by {result['loss_change']:+.4f}")
    if result["samples"]:
        kinds = list(result["models"]) or ["fine-tuned"]
        s = Table(title="greedy samples", show_lines=True)
        for col in ["prompt", "reference", *kinds]:
            s.add_column(col, overflow="fold")
        for row in result["samples"]:
            s.add_row(*(str(row.get(c) if row.get(c) is not None else "—") for c in ["prompt", "reference", *kinds]))
        con.print(s)
    saved = result["saved"]
    con.print(
        f"report: {saved['dir']}/report.md (and eval.json)"
        + (f"; logged to MLflow run {saved['mlflow_run_id']}" if saved["mlflow_run_id"] else "")
    )


@click.command()
@click.argument("job", required=False)
@click.option(
    "--endpoint",
    default=None,
    metavar="NAME",
    help="Talk to this deployment (`azft endpoints list`) instead of loading JOB's model here.",
)
@click.option("--base", is_flag=True, help="Talk to the base model instead of the fine-tuned one.")
@click.option("--system", default=None, help="A system message that starts every conversation.")
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=256, show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Choice(OUTPUTS),
    default="table",
    help="json: one JSON object per reply (user, assistant, tokens, finish_reason).",
)
def chat(
    job: Optional[str], endpoint: Optional[str], base: bool, system: Optional[str], max_new_tokens: int, output: str
) -> int:
    """Talk to the trained model, one line per message, with the chat template it was trained with (greedy), or
    to a deployed endpoint (--endpoint NAME). /reset starts over, /exit or Ctrl-D ends; stdin may be a pipe."""
    import sys

    from azft.trained.chat import HELP, chat_loop

    interactive = sys.stdin.isatty()

    def emit(user: str, gen) -> None:
        if output == "json":
            click.echo(
                json.dumps(
                    {"user": user, "assistant": gen.text, "tokens": gen.tokens, "finish_reason": gen.finish_reason},
                    ensure_ascii=False,
                )
            )
        else:
            click.echo(gen.text if not interactive else f"model> {gen.text}")

    def note(message: str) -> None:
        click.echo(message, err=True)

    if endpoint:
        if base:
            raise click.UsageError("--base talks to the base model here; it does not apply to --endpoint")
        from azft.deploy.chat import EndpointChat
        from azft.deploy.client import connect

        with connect(endpoint) as ep:
            if interactive and output == "table":
                note(f"endpoint {endpoint} ({ep.kind}) — {HELP}")
            chat_loop(
                EndpointChat(ep, system=system, max_new_tokens=max_new_tokens), stdin=sys.stdin, emit=emit, note=note
            )
        return 0
    if not job:
        raise click.UsageError("give JOB (its model runs here) or --endpoint NAME")
    from azft.trained.chat import ChatSession

    tm = _trained(job)
    with _quiet():
        session = ChatSession.for_job(tm, base=base, system=system, max_new_tokens=max_new_tokens)
        if interactive and output == "table":
            note(f"{tm.job} ({'base model' if base else 'fine-tuned'}, greedy) — {HELP}")
        chat_loop(session, stdin=sys.stdin, emit=emit, note=note)
    return 0


@click.command()
@click.argument("job", required=False)
@click.option(
    "--endpoint",
    default=None,
    metavar="NAME",
    help="Send the prompts to this deployment (`azft endpoints list`) instead of loading JOB's model here.",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(),
    help='JSONL prompts: {"messages": [...]} ending with a user turn (a final assistant turn is kept as '
    'the reference), or {"prompt": "..."}.',
)
@click.option("--out", required=True, type=click.Path(), help="JSONL responses, one per input line, in order.")
@click.option("--base", is_flag=True, help="Answer with the base model instead of the fine-tuned one.")
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def predict(
    job: Optional[str],
    endpoint: Optional[str],
    data: str,
    out: str,
    base: bool,
    max_new_tokens: int,
    batch_size: int,
    output: str,
) -> int:
    """Batch inference: greedy, batched, with the KV cache; or, with --endpoint, through a deployed endpoint."""
    if endpoint:
        if base:
            raise click.UsageError("--base answers with the base model here; it does not apply to --endpoint")
        from azft.deploy.client import predict_file

        res = predict_file(endpoint, data, out, max_new_tokens=max_new_tokens)
    elif not job:
        raise click.UsageError("give JOB (its model runs here) or --endpoint NAME")
    else:
        from azft.trained.predict import predict as run

        tm = _trained(job)
        with _quiet():
            res = run(tm, data, out, base=base, max_new_tokens=max_new_tokens, batch_size=batch_size)
    if output == "json":
        click.echo(json.dumps(res, indent=2))
    else:
        click.echo(f"{res['rows']} responses ({res['model']}, {res['completion_tokens']} tokens) -> {res['out']}")
    return 0


@click.command()
@click.argument("job")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["merged", "adapter", "onnx"]),
    default="merged",
    show_default=True,
    help="merged: adapter folded into the base weights; adapter: the adapter alone; onnx: the merged model "
    "as model.onnx for ONNX Runtime, checked against PyTorch (needs azft[onnx]).",
)
@click.option("--out", required=True, type=click.Path(), help="The folder to write (must be empty, or --force).")
@click.option("--force", is_flag=True, help="Replace a non-empty --out folder.")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def export(job: str, fmt: str, out: str, force: bool, output: str) -> int:
    """Write the fine-tuned model as a folder plain transformers (or peft, or ONNX Runtime) loads: weights, tokenizer,
    chat template."""
    from azft.trained.export import export as run

    tm = _trained(job)
    with _quiet():
        res = run(tm, fmt, out, force=force)
    if output == "json":
        click.echo(json.dumps(res, indent=2))
    else:
        click.echo(f"{res['format']} model -> {res['out']} ({', '.join(res['files'])})")
        if "onnx" in res:
            c = res["onnx"]["check"]
            click.echo(
                f"checked with onnxruntime {c['onnxruntime']} on a {c['prompt_tokens']}-token prompt: logits "
                f"within {c['max_abs_diff']:.2g} of PyTorch's (tolerance {c['tolerance']:.2g})"
            )
    return 0
