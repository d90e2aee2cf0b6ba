"""A finished job's model: where it is, what it was trained from, and loading it (tuned or base)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Optional

from azft.errors import UsageError


def recipe_module(name: str) -> ModuleType:
    """A module of the training recipe (``ft_data``, ``ft_model``), imported from the component's code folder."""
    import importlib

    from azft.resources import components_dir

    src = str(components_dir() / "finetune" / "src")
    if src not in sys.path:
        sys.path.append(src)
    return importlib.import_module(name)


def _argv_options(argv: list[str]) -> dict[str, str]:
    """``--key value`` pairs of the recipe's command line (as the local backend rendered it)."""
    opts: dict[str, str] = {}
    for i, tok in enumerate(argv):
        if tok.startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            opts[tok[2:]] = argv[i + 1]
    return opts


@dataclass
class TrainedModel:
    """What a job produced and what it was trained from; ``load()`` gives (model, tokenizer)."""

    job: str
    model_dir: Path
    base: str  # the recipe's --model (hub id, local dir or tiny-phi3)
    base_path: Optional[str] = None  # the recipe's --model_path, when given
    task: str = "chat-completion"
    max_seq_length: int = 2048
    method: str = "lora"
    train_data: Optional[str] = None
    validation_data: Optional[str] = None
    mlflow_run_id: Optional[str] = None
    tracking_uri: Optional[str] = None
    experiment: str = "azft"
    extra: dict = field(default_factory=dict)

    @property
    def is_adapter(self) -> bool:
        return (self.model_dir / "adapter_config.json").is_file()

    @classmethod
    def from_job(cls, name: str) -> "TrainedModel":
        from azft.api import get_job
        from azft.state import lookup_submission

        job = get_job(name)
        if job.backend == "maas":
            raise UsageError(
                f"job {name!r} ran on serverless fine-tuning (maas): its model runs only behind a deployed endpoint",
                hint=f"`azft deploy {name}` creates one (billed hourly while it exists: use --ttl), then "
                "`azft predict --endpoint NAME --data FILE --out FILE` answers your prompts through it",
            )
        if job.backend != "local":
            raise UsageError(
                f"job {name!r} ran on {job.backend}: evaluating, predicting and exporting run here only for local "
                "jobs so far",
                hint="download the model (`azft results JOB` says where it is) and train or evaluate it locally; "
                "on maap the pipeline's evaluate step already logs eval_loss and samples to the job's run",
            )
        info = job.info()
        status = str(getattr(info.status, "value", info.status))
        if status != "Completed":
            raise UsageError(f"job {name!r} is {status}, not Completed", hint=f"`azft wait {name}` and try again")
        from azft.backends.local import LocalJob

        assert isinstance(job, LocalJob)  # job.backend == "local"
        state = job.state()
        opts = _argv_options([str(a) for a in state.get("command", [])])
        model_dir = Path(state["outputs"]["model_output"])
        if not ((model_dir / "adapter_config.json").is_file() or (model_dir / "config.json").is_file()):
            raise UsageError(f"job {name!r}: no model in {model_dir} (no adapter_config.json or config.json)")
        rec = lookup_submission(name) or {}
        return cls(
            job=name,
            model_dir=model_dir,
            base=opts.get("model", "tiny-phi3"),
            base_path=opts.get("model_path"),
            task=opts.get("task", "chat-completion"),
            max_seq_length=int(opts.get("max_seq_length", 2048)),
            method=opts.get("method", "lora"),
            train_data=opts.get("train_data"),
            validation_data=opts.get("validation_data"),
            mlflow_run_id=rec.get("mlflow_run_id") or state.get("mlflow_run_id"),
            tracking_uri=rec.get("tracking_uri"),
            experiment=rec.get("experiment") or "azft",
        )

    # -------------------------------------------------------------------------------------------------- loading

    def base_source(self) -> str:
        ft_model = recipe_module("ft_model")
        try:
            return ft_model.resolve_model(SimpleNamespace(model_path=self.base_path, model=self.base))
        except ft_model.RecipeError as e:
            raise UsageError(f"job {self.job!r}: base model: {e}") from None

    def tokenizer(self):
        ft_model = recipe_module("ft_model")
        has_tok = (self.model_dir / "tokenizer.json").is_file() or (self.model_dir / "tokenizer_config.json").is_file()
        try:
            tok = ft_model.load_tokenizer(str(self.model_dir) if has_tok else self.base_source())
        except ft_model.RecipeError as e:
            raise UsageError(str(e)) from None
        return tok

    def load(self, *, base: bool = False, merged: bool = False):
        """The fine-tuned model (or, with ``base``, the model it started from), fp32 on CPU, in eval mode."""
        import torch
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = {"dtype": torch.float32}
        if base or self.is_adapter:
            model = AutoModelForCausalLM.from_pretrained(self.base_source(), **kwargs)
            if not base:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.model_dir))
                if merged:
                    model = model.merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), **kwargs)
        model.config.use_cache = True
        return model.eval()

    def adapter_config(self) -> dict:
        p = self.model_dir / "adapter_config.json"
        return json.loads(p.read_text()) if p.is_file() else {}
