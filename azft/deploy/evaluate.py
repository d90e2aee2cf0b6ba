"""``azft eval`` for a model that is not here: a maap job's model evaluated on its cluster (the evaluate component,
``azft.backends.evaluation``), or a deployed model judged through its endpoint (``evaluate_generations``: the
samples next to their references; an endpoint returns no log-probabilities of the references, so no loss).

A serverless (maas) job's model runs only behind an endpoint: without ``--endpoint``, its one live deployment
recorded here is used; with none (or several), the error says what to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from azft.deploy import records
from azft.errors import UsageError


def _record(job: str) -> dict[str, Any]:
    from azft.api import resolve_job_name
    from azft.state import check_job_name, lookup_submission

    return lookup_submission(resolve_job_name(check_job_name(job))) or {}


def remote_target(job: str, endpoint: Optional[str]) -> Optional[str]:
    """``maap`` or ``maas`` for a job trained on Azure (or the mock's emulated Azure), ``local`` for a local job
    evaluated through an endpoint, ``None`` when the job's model is evaluated here."""
    from azft.backends.evaluation import check_target

    rec = _record(job)
    backend = rec.get("backend")
    if backend in (None, "local"):
        return "local" if endpoint else None
    return check_target(job, rec)


def submit_cluster_eval(
    job: str, *, data: Optional[str], samples: int, max_new_tokens: int, batch_size: int, max_rows: int
) -> dict[str, Any]:
    from azft.api import resolve_job_name
    from azft.backends.evaluation import submit_evaluation

    def check(path: str, task: str) -> None:
        from azft.errors import DataError
        from azft.trained.generate import read_prompts
        from azft.trained.job import recipe_module

        ft_data = recipe_module("ft_data")
        try:
            read_prompts(path, task)
        except ft_data.DataFormatError as e:
            raise DataError(str(e), hint="one JSON object per line, in the job's task format") from None

    name = resolve_job_name(job)
    return submit_evaluation(
        name,
        _record(name),
        data=data,
        samples=samples,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        max_rows=max_rows,
        check_data=check,
    )


def job_endpoint(job: str, endpoint: Optional[str]) -> str:
    """``--endpoint``, else the one live deployment of ``job`` recorded here."""
    if endpoint:
        dep = records.get(endpoint)
        if dep is None:
            raise UsageError(
                f"no deployment named {endpoint!r} is recorded here", hint="`azft endpoints list` shows them"
            )
        return endpoint
    live = [d.name for d in records.load_all() if d.job == job and not d.expired()]
    if len(live) == 1:
        return live[0]
    if live:
        raise UsageError(
            f"job {job!r} has {len(live)} deployments ({', '.join(live)})", hint="choose one with --endpoint NAME"
        )
    raise UsageError(
        f"job {job!r} ran on serverless fine-tuning (maas): its model runs only behind a deployed endpoint, and none "
        "is recorded here",
        hint=f"`azft deploy {job} --ttl 2h` creates one (billed hourly while it exists), then "
        f"`azft eval {job}` answers the samples through it",
    )


def _default_data(job: str, rec: dict[str, Any]) -> str:
    """The job's validation file as its spec names it (else its training file), when it is a local file."""
    from azft.spec import load_spec

    spec_path = rec.get("spec")
    if spec_path and Path(spec_path).is_file():
        spec = load_spec(spec_path)
        for ref in (spec.data.validation, spec.data.train):
            if ref and "://" not in str(ref) and not str(ref).startswith("azureml:"):
                p = Path(ref) if Path(ref).is_absolute() else Path(spec_path).parent / ref
                if p.is_file():
                    return str(p)
    raise UsageError(
        f"job {job!r}: no local validation file to take the samples from",
        hint="pass --data FILE (JSONL prompts with their reference replies)",
    )


def evaluate_through_endpoint(
    job: str,
    target: str,
    endpoint: Optional[str],
    *,
    data: Optional[str],
    samples: int,
    max_new_tokens: int,
    out_dir: Optional[str],
) -> dict[str, Any]:
    """The samples answered by the endpoint, saved as eval.json + report.md and logged to the job's run."""
    from azft.api import resolve_job_name
    from azft.deploy.client import connect
    from azft.state import state_dir
    from azft.trained.evaluate import evaluate_generations, save_and_log_run

    job = resolve_job_name(job)
    rec = _record(job)
    name = job_endpoint(job, endpoint)
    task = "chat-completion"
    if target == "local":  # a local job's deployment: its task and data are in the job's own record
        from azft.trained.job import TrainedModel

        tm = TrainedModel.from_job(job)
        task, data = tm.task, data or tm.validation_data or tm.train_data
    data = data or _default_data(job, rec)
    usage = {"completion_tokens": 0, "calls": 0}
    with connect(name) as ep:

        def answer(conversations: list[list[dict]]) -> list[str]:
            texts = []
            for messages in conversations:
                text, raw = ep.chat(messages, max_tokens=max_new_tokens)
                usage["completion_tokens"] += int((raw.get("usage") or {}).get("completion_tokens") or 0)
                usage["calls"] += 1
                texts.append(text)
            return texts

        result = evaluate_generations(data, task, answer, job=job, samples=samples)
    result.update(endpoint=name, max_new_tokens=max_new_tokens, **usage)
    where = Path(out_dir) if out_dir else state_dir() / "evaluations" / job / name
    result["saved"] = save_and_log_run(
        result,
        where,
        run_id=rec.get("mlflow_run_id"),
        tracking_uri=rec.get("tracking_uri"),
        experiment=rec.get("experiment"),
    )
    return result
