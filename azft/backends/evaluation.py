"""``azft eval JOB`` for a job that trained on maap (or the mock backend's emulated maap): the evaluate component
submitted as a job of its own in the training job's workspace, on its cluster, against its outputs.

Everything is checked before anything is sent: the training job exists, is azft's pipeline and completed; a local
``--data`` file is read with the recipe's own checks (file, line and field named) before it is uploaded to its
content-hash path. The evaluation job is recorded like a submission, so ``azft status|wait|logs`` find it.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from azft.errors import UsageError


@contextlib.contextmanager
def maap_backend(backend: str, options: dict[str, Any]) -> Iterator[Any]:
    """The maap backend of the training job's workspace (for the mock: inside a session of its saved workspace,
    its requests recorded)."""
    from azft.backends.base import get_backend

    opts = {k: v for k, v in options.items() if k == "workspace"}
    if backend == "mock":
        from azft.backends.mock import MockBackend

        mock = MockBackend(**opts)
        try:
            with mock.workspace.session():
                yield mock.inner("maap")
        finally:
            mock.close()
        return
    yield get_backend("maap", **opts)


def _local_data(path: str, task: str, check: Callable[[str, str], None]) -> Any:
    """A local ``--data`` file, checked by ``check`` (the recipe's own reading, file, line and field named), as a
    DataFile to upload to its content-hash path."""
    from azft.errors import DataError
    from azft.plan import DataFile

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    check(str(p), task)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    return DataFile(role="validation", ref=path, path=str(p.resolve()), uri=None, size=p.stat().st_size, sha256=digest)


def submit_evaluation(
    job: str,
    record: dict[str, Any],
    *,
    data: Optional[str],
    samples: int,
    max_new_tokens: int,
    batch_size: int,
    max_rows: int,
    check_data: Callable[[str, str], None],
) -> dict[str, Any]:
    """Submit the evaluate component against ``job``'s outputs; the evaluation job's name and what it was given."""
    from azft.azure import evaluation, jobs
    from azft.azure.errors import call
    from azft.backends.azureml import quiet_sdk, sdk_console, trust_ca
    from azft.state import record_submission

    remote_data = data if data and data.startswith(("azureml:", "https://", "wasbs://", "abfss://")) else None
    with maap_backend(record["backend"], dict(record.get("options") or {})) as b:
        with quiet_sdk():
            entity = call(f"reading job {job}", b.ml_client.jobs.get, job)
        values = evaluation.training_inputs(entity)
        local = (
            _local_data(data, str(values.get("task", "chat-completion")), check_data)
            if data and not remote_data
            else None
        )
        data_uri = remote_data or (jobs.data_uri(local) if local else None)
        settings = {
            "data": data_uri,
            "samples": samples,
            "max_new_tokens": max_new_tokens,
            "batch_size": batch_size,
            "max_rows": max_rows,
        }
        name = evaluation.eval_job_name(job, settings)
        node = evaluation.build_eval_job(
            job,
            values,
            name=name,
            data_uri=data_uri,
            samples=samples,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            max_rows=max_rows,
            experiment=record.get("experiment"),
        )
        existed = b._exists(name)
        if not existed:
            if local is not None:
                b.uploader.upload([local], b.default_datastore())
            with quiet_sdk(), trust_ca(b.ca_bundle), sdk_console():
                call(f"submitting evaluation job {name}", b.ml_client.jobs.create_or_update, node)
            b.after_command()
    record_submission(
        name,
        backend=record["backend"],
        target="maap",
        experiment=record.get("experiment"),
        tracking_uri=record.get("tracking_uri"),
        options=record.get("options"),
        evaluates=job,
    )
    return {
        "job": job,
        "evaluation_job": name,
        "submitted": not existed,
        "compute": values["compute"],
        "trained_model": evaluation.output_uri(job, evaluation.MODEL_OUTPUT),
        "data": data_uri or values.get("validation_data") or values.get("train_data"),
        "samples": samples,
        "max_new_tokens": max_new_tokens,
    }


def check_target(job: str, record: dict[str, Any]) -> str:
    """``maap`` or ``maas``: where an Azure (or mock) job trained, from its submission record."""
    backend = record.get("backend")
    target = record.get("target") or ((record.get("options") or {}).get("target"))
    if backend in ("maas", "maap"):
        return str(backend)
    if backend == "mock" and target in ("maas", "maap"):
        return str(target)
    raise UsageError(f"job {job!r} ran on {backend or 'an unknown backend'}: azft eval cannot evaluate it")
