"""Pipeline step: register the fine-tuned model (adapter or full weights) with lineage tags.

The fine-tune output is wrapped as an MLflow pyfunc model (``hf_model.py`` travels with it) and registered:

- ``--mode mlflow`` (default): ``mlflow.register_model`` in the tracking server's model registry. On Azure ML the
  step's tracking URI is the workspace (azureml-mlflow), so the model lands in the workspace's model list, and
  locally it lands in whatever ``MLFLOW_TRACKING_URI`` names.
- ``--mode azureml``: an ``mlflow_model`` asset created with azure-ai-ml in the workspace the job runs in, with
  the compute's managed identity (``DEFAULT_IDENTITY_CLIENT_ID``) or the submitting user's identity.

Lineage tags on the model version: base_model, method, task, job_name, train_data_sha256,
validation_data_sha256, model_kind, and eval_loss / perplexity when an evaluation folder is given.
Writes ``registration.json`` (name, version, source, tags) to ``--output``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXIT_FAILED = 1
EXIT_INVALID = 2
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
PIP_REQUIREMENTS = [
    "torch==2.13.0",
    "transformers==5.24.0",
    "tokenizers==0.23.3",
    "peft==0.21.2",
    "accelerate==1.15.0",
    "safetensors==0.8.0",
]


class StepError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_INVALID):
        super().__init__(message)
        self.exit_code = exit_code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trained-model", required=True, type=Path)
    p.add_argument("--model-name", required=True)
    p.add_argument("--base-model", required=True, help="the model that was fine-tuned (hub id or catalog id)")
    p.add_argument("--method", required=True)
    p.add_argument("--task", default="chat-completion")
    p.add_argument("--train-data", type=Path)
    p.add_argument("--validation-data", type=Path)
    p.add_argument("--evaluation", type=Path, help="the evaluate step's output folder (eval.json)")
    p.add_argument("--job-name", help="defaults to the Azure ML pipeline job (AZUREML_ROOT_RUN_ID) when there is one")
    p.add_argument("--mode", choices=["mlflow", "azureml"], default="mlflow")
    p.add_argument("--output", required=True, type=Path)
    return p.parse_args(argv)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_model_dir(root: Path) -> Path:
    def has_model(d: Path) -> bool:
        return (d / "adapter_config.json").is_file() or (d / "config.json").is_file()

    if not root.is_dir():
        raise StepError(f"{root}: trained model folder not found")
    if has_model(root):
        return root
    found = [
        d
        for d in root.rglob("*")
        if d.is_dir() and has_model(d) and not any(p.startswith("checkpoint-") for p in d.relative_to(root).parts)
    ]
    if not found:
        raise StepError(f"{root}: no adapter_config.json or config.json found (is this the fine-tune output?)")
    return min(found, key=lambda d: (len(d.relative_to(root).parts), str(d)))


def lineage_tags(args: argparse.Namespace, model_dir: Path) -> dict[str, str]:
    kind = "adapter" if (model_dir / "adapter_config.json").is_file() else "full"
    job = args.job_name or os.environ.get("AZUREML_ROOT_RUN_ID") or os.environ.get("AZUREML_RUN_ID") or "local"
    tags = {
        "base_model": args.base_model,
        "method": args.method,
        "task": args.task,
        "job_name": job,
        "model_kind": kind,
        "created_by": "azft",
    }
    for role, path in (("train_data", args.train_data), ("validation_data", args.validation_data)):
        if path is not None:
            if not path.is_file():
                raise StepError(f"{path}: {role} file not found")
            tags[f"{role}_sha256"] = sha256(path)
    if args.evaluation is not None:
        eval_file = args.evaluation / "eval.json"
        if not eval_file.is_file():
            raise StepError(f"{eval_file}: evaluation result not found")
        try:
            result = json.loads(eval_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StepError(f"{eval_file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        for key in ("eval_loss", "perplexity"):
            if isinstance(result.get(key), (int, float)):
                tags[key] = f"{result[key]:.6g}"
    return tags


def _model_config(args: argparse.Namespace) -> dict:
    return {"base_model": args.base_model, "max_new_tokens": 256}


def register_mlflow(args: argparse.Namespace, model_dir: Path, tags: dict[str, str]) -> dict:
    import mlflow

    run_id = os.environ.get("MLFLOW_RUN_ID")
    with mlflow.start_run(run_id=run_id) if mlflow.active_run() is None else _null():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(HERE / "hf_model.py"),
            artifacts={"model_dir": str(model_dir)},
            model_config=_model_config(args),
            pip_requirements=PIP_REQUIREMENTS,
        )
        mlflow.set_tags({f"azft.{k}": v for k, v in tags.items()})
    version = mlflow.register_model(info.model_uri, args.model_name, tags=tags)
    return {
        "name": version.name,
        "version": str(version.version),
        "source": info.model_uri,
        "registry": _redact(mlflow.get_registry_uri()),
    }


def _redact(uri: str) -> str:
    """A registry URI without credentials or query string (tokens never reach the output)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host if parts.netloc else "", parts.path, "", ""))


def register_azureml(args: argparse.Namespace, model_dir: Path, tags: dict[str, str]) -> dict:
    import mlflow
    from azure.ai.ml import MLClient
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    missing = [
        v
        for v in ("AZUREML_ARM_SUBSCRIPTION", "AZUREML_ARM_RESOURCEGROUP", "AZUREML_ARM_WORKSPACE_NAME")
        if not os.environ.get(v)
    ]
    if missing:
        raise StepError(
            f"--mode azureml runs inside an Azure ML job; {', '.join(missing)} not set (use --mode mlflow elsewhere)"
        )
    if os.environ.get("DEFAULT_IDENTITY_CLIENT_ID"):
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential(client_id=os.environ["DEFAULT_IDENTITY_CLIENT_ID"])
    else:
        from azure.ai.ml.identity import AzureMLOnBehalfOfCredential

        credential = AzureMLOnBehalfOfCredential()
    client = MLClient(
        credential,
        os.environ["AZUREML_ARM_SUBSCRIPTION"],
        os.environ["AZUREML_ARM_RESOURCEGROUP"],
        os.environ["AZUREML_ARM_WORKSPACE_NAME"],
    )
    folder = Path(tempfile.mkdtemp()) / "mlflow_model"
    mlflow.pyfunc.save_model(
        path=str(folder),
        python_model=str(HERE / "hf_model.py"),
        artifacts={"model_dir": str(model_dir)},
        model_config=_model_config(args),
        pip_requirements=PIP_REQUIREMENTS,
    )
    model = client.models.create_or_update(
        Model(
            name=args.model_name,
            path=str(folder),
            type=AssetTypes.MLFLOW_MODEL,
            tags=tags,
            description=f"{args.base_model} fine-tuned with {args.method} by azft (job {tags['job_name']})",
        )
    )
    return {"name": model.name, "version": str(model.version), "source": model.path, "registry": "azureml"}


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not NAME_RE.match(args.model_name):
            raise StepError(
                f"--model-name {args.model_name!r}: use letters, digits, '-', '_' or '.', "
                "starting with a letter or digit"
            )
        model_dir = find_model_dir(args.trained_model)
        tags = lineage_tags(args, model_dir)
        register = register_azureml if args.mode == "azureml" else register_mlflow
        try:
            registered = register(args, model_dir, tags)
        except StepError:
            raise
        except Exception as exc:
            raise StepError(
                f"registration failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", EXIT_FAILED
            ) from None
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    registered["tags"] = tags
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "registration.json").write_text(json.dumps(registered, indent=2), encoding="utf-8")
    print(
        f"registered {registered['name']} version {registered['version']} ({tags['model_kind']}, "
        f"base {tags['base_model']}, method {tags['method']}, job {tags['job_name']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
