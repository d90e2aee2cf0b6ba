#!/usr/bin/env python
"""Regenerate azft/catalog.yaml's model facts from Azure's registry specs (run by hand, never at import).

    git clone https://github.com/Azure/azureml-assets      # or any clone/mirror of it, bare ones included
    python scripts/build_catalog.py --assets ../azureml-assets [--commit <sha>] [--out azft/catalog.yaml]

For each catalog model it reads ``assets/models/system/<dir>/spec.yaml`` at the given commit (both the older
tags/properties shape and the newer ``system_metadata`` shape), walks the spec's git history for serverless
fine-tuning (``maas-finetuning``: when it was offered, in which regions, when it was withdrawn), and writes per model:
serverless status with deprecation/retirement dates, serverless and deployment regions, the fine-tuning compute list,
the minimum spec, ``model_specific_defaults`` and the context length. Every fact gets a ``provenance`` entry: the
file, commit and field it came from and the date it was read, a named document for the few facts Azure publishes
elsewhere (``DOCUMENTED`` below), or ``not_published`` when nobody publishes it.

Everything else in catalog.yaml (size table, methods, backends, other sections, unknown keys inside a model entry)
is kept as it is, comments included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from azft.catalog_registry import (  # noqa: E402
    FACTS,
    nest,
    registry_values,
    serverless_history,
    spec_facts,
)

REPO = "Azure/azureml-assets"
SPEC_DIR = "assets/models/system"

#: Documents a fact can cite besides the registry specs (ids used in `provenance.*.source`).
DOCUMENTS = {
    "registry-spec": "Azure/azureml-assets assets/models/system/<model>/spec.yaml (commit per fact)",
    "validate-assets": "Azure/azureml-assets scripts/azureml-assets/azureml/assets/validate_assets.py "
    "(confirm_min_sku_spec: finetuneMinSkuSpec is vCPUs|GPUs|memory GB|disk GB)",
    "regions-2024": "MicrosoftDocs/azure-docs articles/ai-studio/includes/region-availability-maas.md (2024-08-05)",
    "regions-2025": "MicrosoftDocs/azure-ai-docs articles/ai-foundry/includes/region-availability-maas.md (2025-11-24)",
    "retired-models": "MicrosoftDocs/azure-ai-docs articles/ai-foundry/concepts/model-lifecycle-retirement.md "
    "(retired models and their replacements)",
    "acft-pipeline": "Azure/azureml-assets assets/training/finetune_acft_hf_nlp/components/pipeline_components/"
    "chat_completion/spec.yaml (v0.0.82)",
    "hf-hub": "the model's card on huggingface.co (its hub id)",
    "hf-config": "the model's config.json on huggingface.co (https://huggingface.co/<hf_id>/blob/main/config.json)",
    "azft": "azft's own naming, or its bundled test model",
    **{
        f"vm-{series}": f"MicrosoftDocs/azure-compute-docs articles/virtual-machines/sizes/gpu-accelerated/{page}.md "
        "(GPUs, GPU memory, vCPUs, memory per size)"
        for series, page in (
            ("nca100v4", "nc-a100-v4-series"),
            ("nda100v4", "nda100-v4-series"),
            ("ndma100v4", "ndm-a100-v4-series"),
            ("ncadsh100v5", "ncadsh100v5-series"),
            ("ndh100v5", "ndh100v5-series"),
            ("ncv3", "ncv3-series"),
            ("ndv2", "ndv2-series"),
            ("ncast4v3", "ncast4v3-series"),
            ("nvadsa10v5", "nvadsa10v5-series"),
        )
    },
}
DOC_READ = "2026-11"  # when the documents above were last checked (notes in the project's research)

_AZFT = {"source": "azft"}
_HF = {"source": "hf-hub", "read": DOC_READ}
_HF_CONFIG = {"source": "hf-config", "read": DOC_READ}
_PHI4_MAAS = {
    "maas.status": ("available", {"source": "regions-2025", "read": DOC_READ}),
    "maas.regions": (
        ["eastus2", "eastus", "northcentralus", "southcentralus", "westus", "westus3"],
        {"source": "regions-2025", "read": DOC_READ},
    ),
    "maas.requires": (
        "a hub-based project, a paid subscription and the Microsoft.Network resource provider "
        "registered; customer-managed keys are not supported",
        {"source": "regions-2025", "read": DOC_READ},
    ),
}
_PHI3_SMALL_NOTE = (
    "Phi-3-small is served by serverless endpoints for inference only; it never had serverless fine-tuning"
)

#: catalog id → registry spec directory (None: not in Azure/azureml-assets) and the facts documented elsewhere.
MODELS: dict[str, dict[str, Any]] = {
    "phi-3-mini-4k-instruct": {
        "dir": "phi-3-mini-4k-instruct",
        "family": "phi-3",
        "hf_id": "microsoft/Phi-3-mini-4k-instruct",
    },
    "phi-3-mini-128k-instruct": {
        "dir": "phi-3-mini-128k-instruct",
        "family": "phi-3",
        "hf_id": "microsoft/Phi-3-mini-128k-instruct",
    },
    "phi-3-medium-4k-instruct": {
        "dir": "phi-3-medium-4k-instruct",
        "family": "phi-3",
        "hf_id": "microsoft/Phi-3-medium-4k-instruct",
    },
    "phi-3-medium-128k-instruct": {
        "dir": "phi-3-medium-128k-instruct",
        "family": "phi-3",
        "hf_id": "microsoft/Phi-3-medium-128k-instruct",
        "documented": {
            "maas.deployment_regions": (["eastus2", "swedencentral"], {"source": "regions-2024", "read": DOC_READ})
        },
    },
    "phi-3-small-8k-instruct": {
        "dir": "phi-3-small-8k-instruct",
        "family": "phi-3",
        "hf_id": "microsoft/Phi-3-small-8k-instruct",
        "corrections": {
            "context_length": (
                8192,
                _HF_CONFIG,
                (
                    "the 8k variant's config.json has max_position_embeddings 8192; the registry's "
                    "textContextWindow repeats the 128k variant's value"
                ),
            )
        },
        "documented": {"maas.note": (_PHI3_SMALL_NOTE, {"source": "regions-2024", "read": DOC_READ})},
    },
    "phi-3-small-128k-instruct": {
        "dir": "phi-3-small-128k-instruct",
        "family": "phi-3",
        "hf_id": "microsoft/Phi-3-small-128k-instruct",
        "documented": {"maas.note": (_PHI3_SMALL_NOTE, {"source": "regions-2024", "read": DOC_READ})},
    },
    "phi-3.5-mini-instruct": {
        "dir": "phi-3.5-mini-128k-instruct",
        "family": "phi-3.5",
        "hf_id": "microsoft/Phi-3.5-mini-instruct",
        "documented": {"maas.replacement": ("phi-4-mini-instruct", {"source": "retired-models", "read": DOC_READ})},
    },
    "phi-4": {"dir": "Phi-4", "family": "phi-4", "hf_id": "microsoft/phi-4", "documented": dict(_PHI4_MAAS)},
    "phi-4-mini-instruct": {
        "dir": None,
        "family": "phi-4",
        "hf_id": "microsoft/Phi-4-mini-instruct",
        "documented": {
            **_PHI4_MAAS,
            "display_name": ("Phi-4-mini-instruct", {"source": "regions-2025", "read": DOC_READ}),
            "registry_asset": (
                "azureml://registries/azureml/models/Phi-4-mini-instruct",
                {"source": "regions-2025", "read": DOC_READ},
            ),
            "context_length": (131072, _HF_CONFIG),
            "parameters_b": (3.8, _HF),
        },
    },
}
NOT_IN_ASSETS = "Azure/azureml-assets has no spec for this model: the registry publishes no {what} for it"


def git(assets: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(assets), *args], check=True, capture_output=True, text=True).stdout


def load_yaml_text(text: str) -> dict:
    import yaml

    return yaml.safe_load(text) or {}


def spec_at(assets: Path, commit: str, path: str) -> Optional[dict]:
    try:
        return load_yaml_text(git(assets, "show", f"{commit}:{path}"))
    except subprocess.CalledProcessError:
        return None


def history(assets: Path, commit: str, path: str) -> list[tuple[str, str, dict]]:
    """(commit, date, facts) for every version of the spec, oldest first."""
    log = git(assets, "log", "--format=%H %cs", commit, "--", path).split("\n")
    out = []
    for line in reversed([x for x in log if x.strip()]):
        sha, date = line.split()
        doc = spec_at(assets, sha, path)
        if doc is not None:
            out.append((sha, date, spec_facts(doc)))
    return out


def source_of(commit: str, date: str, path: str, read: str) -> dict:
    return {"source": f"{REPO}@{commit[:12]} {path}", "committed": date, "read": read}


def parameters_from_description(assets: Path, commit: str, directory: str, read: str) -> Optional[tuple]:
    path = f"{SPEC_DIR}/{directory}/description.md"
    try:
        text = git(assets, "show", f"{commit}:{path}")
    except subprocess.CalledProcessError:
        return None
    m = re.search(r"(\d+(?:\.\d+)?)B[ -]parameter", text)
    if not m:
        return None
    date = git(assets, "log", "-1", "--format=%cs", commit, "--", path).strip()
    return float(m.group(1)), {**source_of(commit, date, path, read), "field": "text: '<N>B parameter'"}


def serverless(hist: list, current: dict, path: str, read: str) -> tuple[dict, dict]:
    """maas.status / regions / deployment_regions from the spec's history."""
    h = serverless_history(hist)
    if h is None:
        return {}, {}
    last_sha, last_date = h["last"]
    first_sha, first_date = h["first"]
    offered = f"tags.maas-finetuning true from {first_date} ({first_sha[:12]}) to {last_date} ({last_sha[:12]})"
    if h["withdrawn"]:
        w_sha, w_date = h["withdrawn"]
        offered += f"; removed {w_date} ({w_sha[:12]})"
    retired = "retirement_date" in current and "maas_finetuning" not in current
    status = "retired" if retired else ("available" if current.get("maas_finetuning", (False,))[0] else "unlisted")
    src = {**source_of(last_sha, last_date, path, read), "field": "tags.maas-finetuning", "history": offered}
    values: dict[str, Any] = {"maas.status": status, "maas.regions": h["regions"]}
    prov = {
        "maas.status": src,
        "maas.regions": {**source_of(last_sha, last_date, path, read), "field": "tags.maas-finetuning-regions"},
    }
    if h["deploy_regions"]:
        values["maas.deployment_regions"] = h["deploy_regions"]
        prov["maas.deployment_regions"] = {
            **source_of(last_sha, last_date, path, read),
            "field": "tags.maas-finetuning-deploy-regions",
        }
    return values, prov


def registry_model(assets: Path, commit: str, directory: str, read: str) -> tuple[dict, dict]:
    path = f"{SPEC_DIR}/{directory}/spec.yaml"
    doc = spec_at(assets, commit, path)
    if doc is None:
        raise SystemExit(f"{path} does not exist at {commit} in {assets}")
    date = git(assets, "log", "-1", "--format=%cs", commit, "--", path).strip()
    facts = spec_facts(doc)
    values, prov = registry_values(facts, source_of(commit, date, path, read))
    hist = history(assets, commit, path)
    v2, p2 = serverless(hist, facts, path, read)
    values.update(v2)
    prov.update(p2)
    if "maas.status" not in values:
        # the registry never offered it; a document may say otherwise (model_entry lets it win)
        values["maas.status?"] = "never"
        prov["maas.status?"] = {
            **source_of(commit, date, path, read),
            "field": "tags.maas-finetuning",
            "history": f"absent from all {len(hist)} versions of the spec",
        }
    params = parameters_from_description(assets, commit, directory, read)
    if params:
        values["parameters_b"], prov["parameters_b"] = params
    return values, prov


def model_entry(mid: str, meta: dict, assets: Path, commit: str, read: str) -> dict:
    values: dict[str, Any] = {"family": meta["family"], "hf_id": meta["hf_id"]}
    prov: dict[str, dict] = {"family": dict(_AZFT), "hf_id": dict(_HF)}
    if meta["dir"]:
        v, p = registry_model(assets, commit, meta["dir"], read)
        values.update(v)
        prov.update(p)
    for key, (value, src) in (meta.get("documented") or {}).items():
        if key not in values:
            values[key] = value
            prov[key] = src
    guess_value, guess_prov = values.pop("maas.status?", None), prov.pop("maas.status?", None)
    if "maas.status" not in values and guess_value:
        values["maas.status"], prov["maas.status"] = guess_value, guess_prov
    for key, (value, src, why) in (meta.get("corrections") or {}).items():
        registry_said = values.get(key)
        values[key] = value
        prov[key] = {**src, "corrects": f"{prov.get(key, {}).get('field', 'registry')} = {registry_said}: {why}"}
    for key in FACTS:
        if key not in prov:
            what = key.split(".")[-1].replace("_", " ")
            prov[key] = {
                "not_published": NOT_IN_ASSETS.format(what=what)
                if not meta["dir"]
                else f"the registry spec holds no {what} for this model"
            }
            values.setdefault(
                key, [] if key == "maap.allowed_skus" else ({} if key in ("maap.min_spec", "defaults") else None)
            )
    nested = nest(values)
    nested.setdefault("maas", {}).setdefault("status", "never")
    entry = {k: nested[k] for k in ORDER if k in nested}
    entry.update({k: v for k, v in nested.items() if k not in entry})
    entry["provenance"] = {k: prov[k] for k in sorted(prov)}
    return entry


OWNED = {
    "display_name",
    "family",
    "registry_asset",
    "registry_version",
    "hf_id",
    "context_length",
    "parameters_b",
    "archived",
    "maas",
    "maap",
    "defaults",
    "registry_defaults",
    "provenance",
}
OBSOLETE_TOP = (
    "mini_sizes",
    "big_sizes",
    "mini_defaults",
    "big_defaults",
    "phi3_retired",
    "phi4_available",
    "denied_skus",
)


def _plain(x: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(x, dict):
        m = CommentedMap()
        for k, v in x.items():
            m[k] = _plain(v)
        return m
    if isinstance(x, list):
        s = CommentedSeq(_plain(v) for v in x)
        if all(not isinstance(v, (dict, list)) for v in x):
            s.fa.set_flow_style()
        return s
    return x


def _float(representer, value: float):
    """Floats PyYAML (YAML 1.1, what azft.catalog reads with) also reads as floats: 5.0e-06, never 5e-06."""
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        text = text.replace("e", ".0e")
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


ORDER = (
    "display_name",
    "family",
    "registry_asset",
    "registry_version",
    "hf_id",
    "context_length",
    "parameters_b",
    "archived",
    "maas",
    "maap",
    "defaults",
    "registry_defaults",
)


def _top_level_blocks(lines: list[str]) -> list[tuple[str, int, int]]:
    """(key, first line, end line) of each top-level key; comments right above a key belong to it."""
    keys = [(i, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"([A-Za-z_][\w-]*):", line))]
    starts = []
    for n, (i, key) in enumerate(keys):
        floor = keys[n - 1][0] + 1 if n else 0
        start = i
        while start > floor and lines[start - 1].startswith("#"):
            start -= 1
        starts.append((key, start))
    return [
        (key, start, starts[n + 1][1] if n + 1 < len(starts) else len(lines)) for n, (key, start) in enumerate(starts)
    ]


def _dump(y: Any, data: dict) -> str:
    import io

    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def merge_text(text: str, y: Any, entries: dict[str, dict], registry_source: dict) -> str:
    """catalog.yaml with `models`, `sources` and `checked` replaced; every other line kept byte for byte."""
    doc = y.load(text)
    old_models = doc.get("models") or {}
    models = {mid: dict(m) for mid, m in old_models.items()}
    for mid, entry in entries.items():
        kept = {k: v for k, v in (old_models.get(mid) or {}).items() if k not in OWNED}
        models[mid] = {**entry, **kept}
    sources = dict(DOCUMENTS)
    sources["registry-spec"] = (
        f"{DOCUMENTS['registry-spec']}; this file read {registry_source['commit']} "
        f"({registry_source['committed']}) on {registry_source['read']}"
    )
    replacement = {
        "checked": _dump(y, {"checked": registry_source["read"]}),
        "models": _dump(y, {"models": _plain(models)}),
        "sources": _dump(y, {"sources": _plain(sources)}),
    }
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    done = set()
    for key, start, end in _top_level_blocks(lines):
        block = lines[start:end]
        if not out:
            out.extend(lines[:start])
        if key in OBSOLETE_TOP:
            continue
        if key in replacement:
            comments = [
                ln
                for ln in block
                if ln.startswith("#")
                and block.index(ln) < block.index(next(x for x in block if x.startswith(key + ":")))
            ]
            out.extend(comments)
            out.append(replacement[key] + ("\n" if key != "checked" else ""))
            done.add(key)
        else:
            out.extend(block)
    for key in ("checked", "models", "sources"):
        if key not in done:
            out.append("\n" + replacement[key])
    return re.sub(r"\n{3,}", "\n\n", "".join(out))


def build(assets: Path, commit: str, out: Path, read: str) -> None:
    from ruamel.yaml import YAML

    commit = git(assets, "rev-parse", commit).strip()
    committed = git(assets, "log", "-1", "--format=%cs", commit).strip()
    entries = {mid: model_entry(mid, meta, assets, commit, read) for mid, meta in MODELS.items()}
    y = YAML()
    y.representer.add_representer(float, _float)
    y.width = 120
    y.preserve_quotes = True
    text = merge_text(
        out.read_text(encoding="utf-8"), y, entries, {"commit": commit, "committed": committed, "read": read}
    )
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: {len(entries)} models from {REPO}@{commit[:12]} ({committed}), read {read}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", required=True, type=Path, help="a clone (or bare mirror) of Azure/azureml-assets")
    ap.add_argument("--commit", default="HEAD", help="the commit to read (default: HEAD)")
    ap.add_argument("--out", type=Path, default=ROOT / "azft" / "catalog.yaml")
    ap.add_argument("--read-date", default=dt.date.today().isoformat(), help="date recorded as 'read' (YYYY-MM-DD)")
    a = ap.parse_args(argv)
    build(a.assets, a.commit, a.out, a.read_date)
    return 0


if __name__ == "__main__":
    sys.exit(main())
