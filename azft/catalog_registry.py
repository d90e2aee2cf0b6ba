"""Azure ML registry model specs → catalog facts, each with the field it was read from.

Shared by ``scripts/build_catalog.py`` (specs from a checkout of Azure/azureml-assets, history included) and
``azft catalog refresh`` (the live registry through ``MLClient(registry_name="azureml").models.get``).

The registry has written the same facts in two shapes:

* until 2026-06 as ``tags`` / ``properties`` (``finetune_compute_allow_list``, ``finetune-min-sku-spec``,
  ``maas-finetuning``, ``maas-finetuning-regions``, ``FinetuneRetirementDate`` ...);
* since then as ``system_metadata`` (``supportedComputes.finetuneComputes``, ``SKU.finetuneMinSkuSpec``,
  ``deprecation.finetuneRetirementDate``, ``maasFinetuning.maasFinetuningDeployRegions`` ...).

Both are read; ``system_metadata`` wins where both are present. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any, Optional

#: ``finetuneMinSkuSpec`` is ``vCPUs|GPUs|memory GB|disk GB``: Azure/azureml-assets
#: scripts/azureml-assets/azureml/assets/validate_assets.py (``confirm_min_sku_spec``) compares it with each allowed
#: size's ``vCPUs``, ``gpus``, ``memoryGB`` and ``maxResourceVolumeMB / 1024``.
MIN_SPEC_FIELDS = ("vcpus", "gpus", "ram_gb", "disk_gb")

#: registry ``model_specific_defaults`` name → azft's name (spec hyperparameters / compute)
DEFAULT_NAMES = {
    "learning_rate": "learning_rate",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_seq_length": "max_seq_length",
    "lr_scheduler_type": "lr_scheduler",
    "deepspeed_stage": "deepspeed_stage",
    "precision": "precision",
    "apply_lora": "apply_lora",
}


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _truthy(v: Any) -> Optional[bool]:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    return str(v).strip().lower() in ("true", "1", "yes")


def _list(v: Any) -> Optional[list[str]]:
    if v is None:
        return None
    if isinstance(v, str):
        items = [x.strip() for x in v.replace("[", "").replace("]", "").split(",")]
    else:
        items = [str(x).strip() for x in v]
    return [x for x in items if x]


def _date(v: Any) -> Optional[str]:
    return str(v)[:10] if v else None


def _number(v: Any) -> Any:
    if isinstance(v, str):
        s = v.strip()
        if s.lower() in ("true", "false"):
            return s.lower() == "true"
        for cast in (int, float):
            try:
                return cast(s)
            except ValueError:
                pass
    return v


def _first(*candidates: tuple[Any, str]) -> Optional[tuple[Any, str]]:
    """The first (value, field) pair whose value is present."""
    for value, where in candidates:
        if value not in (None, "", []):
            return value, where
    return None


def spec_facts(doc: dict) -> dict[str, tuple[Any, str]]:
    """Facts in one registry model spec (or live model version): ``{fact: (value, field it was read from)}``.

    A fact the spec does not hold is absent from the result.
    """
    tags = doc.get("tags") or {}
    props = doc.get("properties") or {}
    sm = doc.get("system_metadata") or doc.get("systemMetadata") or {}
    found: dict[str, Optional[tuple[Any, str]]] = {
        "name": _first((doc.get("name"), "name")),
        "version": _first((doc.get("version"), "version")),
        "archived": _first((doc.get("isArchived"), "isArchived")),
        "context_length": _first(
            (sm.get("textContextWindow"), "system_metadata.textContextWindow"),
            (tags.get("textContextWindow"), "tags.textContextWindow"),
        ),
        "finetune_computes": _first(
            (
                _list(_get(sm, "supportedComputes", "finetuneComputes")),
                "system_metadata.supportedComputes.finetuneComputes",
            ),
            (_list(tags.get("finetune_compute_allow_list")), "tags.finetune_compute_allow_list"),
        ),
        "min_spec": _first(
            (_get(sm, "SKU", "finetuneMinSkuSpec"), "system_metadata.SKU.finetuneMinSkuSpec"),
            (props.get("finetune-min-sku-spec"), "properties.finetune-min-sku-spec"),
        ),
        "registry_defaults": _first((_mapping(tags.get("model_specific_defaults")), "tags.model_specific_defaults")),
        "maas_finetuning": _first((_truthy(tags.get("maas-finetuning")), "tags.maas-finetuning")),
        "maas_regions": _first(
            (
                _list(tags.get("maas-finetuning-regions") or tags.get("maas-finetuning-region")),
                "tags.maas-finetuning-regions",
            )
        ),
        "maas_deploy_regions": _first(
            (
                _list(_get(sm, "maasFinetuning", "maasFinetuningDeployRegions")),
                "system_metadata.maasFinetuning.maasFinetuningDeployRegions",
            ),
            (_list(tags.get("maas-finetuning-deploy-regions")), "tags.maas-finetuning-deploy-regions"),
        ),
        "deprecation_date": _first(
            (
                _date(_get(sm, "deprecation", "finetuneDeprecationDate")),
                "system_metadata.deprecation.finetuneDeprecationDate",
            ),
            (_date(tags.get("FinetuneDeprecationDate")), "tags.FinetuneDeprecationDate"),
        ),
        "retirement_date": _first(
            (
                _date(_get(sm, "deprecation", "finetuneRetirementDate")),
                "system_metadata.deprecation.finetuneRetirementDate",
            ),
            (_date(tags.get("FinetuneRetirementDate")), "tags.FinetuneRetirementDate"),
        ),
    }
    out = {k: v for k, v in found.items() if v is not None}
    if "archived" in out:
        out["archived"] = (bool(_truthy(out["archived"][0])), out["archived"][1])
    if "context_length" in out:
        out["context_length"] = (int(out["context_length"][0]), out["context_length"][1])
    return out


def _mapping(v: Any) -> Any:
    """A tag value that is a mapping: as written in a spec file, or JSON text as the live registry returns tags."""
    if isinstance(v, str):
        import json

        try:
            v = json.loads(v)
        except ValueError:
            return None
    return v if isinstance(v, dict) else None


def parse_min_spec(raw: str) -> dict:
    parts = [int(x) for x in str(raw).split("|")]
    return dict(zip(MIN_SPEC_FIELDS, parts))


def azft_defaults(registry_defaults: dict) -> dict:
    """The registry's ``model_specific_defaults`` under azft's names (learning-rate bounds as a pair)."""
    raw = {k: _number(v) for k, v in (registry_defaults or {}).items()}
    out = {ours: raw[theirs] for theirs, ours in DEFAULT_NAMES.items() if theirs in raw}
    if "learning_rate_min" in raw and "learning_rate_max" in raw:
        out["learning_rate_bounds"] = [raw["learning_rate_min"], raw["learning_rate_max"]]
    if "precision" in out:
        out["precision"] = int(out["precision"]) if str(out["precision"]).isdigit() else out["precision"]
    return out


def serverless_history(snapshots: list[tuple[str, str, dict]]) -> Optional[dict]:
    """Serverless fine-tuning across a spec's history. ``snapshots``: ``(commit, date, spec_facts)``, oldest first.

    Returns ``None`` when no snapshot ever had ``maas-finetuning: true``; else where it was first and last seen,
    the regions of the last snapshot that offered it, and the commit that withdrew it (if any).
    """
    first = last = withdrawn = None
    for commit, date, facts in snapshots:
        on = bool(facts.get("maas_finetuning", (False, ""))[0])
        if on:
            first = first or (commit, date, facts)
            last = (commit, date, facts)
            withdrawn = None
        elif last is not None and withdrawn is None:
            withdrawn = (commit, date, facts)
    if first is None or last is None:
        return None
    regions = last[2].get("maas_regions", (None, ""))[0] or []
    deploy = last[2].get("maas_deploy_regions", (None, ""))[0] or []
    return {
        "first": first[:2],
        "last": last[:2],
        "withdrawn": withdrawn[:2] if withdrawn else None,
        "regions": regions,
        "deploy_regions": deploy,
    }


#: Every fact a catalog model carries; each needs a provenance entry (tests/spec/test_catalog_sources.py).
FACTS = (
    "display_name",
    "family",
    "registry_asset",
    "registry_version",
    "hf_id",
    "context_length",
    "parameters_b",
    "archived",
    "maas.status",
    "maas.regions",
    "maas.deployment_regions",
    "maas.deprecation_date",
    "maas.retirement_date",
    "maap.allowed_skus",
    "maap.min_spec",
    "defaults",
)


def registry_values(facts: dict[str, tuple[Any, str]], source: dict) -> tuple[dict, dict]:
    """Catalog values (dotted keys) and their provenance from one spec's facts.

    ``source`` names where the spec was read: ``{"source": "...", "read": "YYYY-MM-DD", ...}``.
    """
    values: dict[str, Any] = {}
    prov: dict[str, dict] = {}

    def put(key: str, value: Any, field: str) -> None:
        values[key] = value
        prov[key] = {**source, "field": field}

    if "name" in facts:
        name, field = facts["name"]
        put("display_name", name, field)
        put("registry_asset", f"azureml://registries/azureml/models/{name}", field)
    if "version" in facts:
        put("registry_version", int(facts["version"][0]), facts["version"][1])
    if "archived" in facts:
        put("archived", *facts["archived"])
    if "context_length" in facts:
        put("context_length", *facts["context_length"])
    if "finetune_computes" in facts:
        put("maap.allowed_skus", *facts["finetune_computes"])
    if "min_spec" in facts:
        raw, field = facts["min_spec"]
        put("maap.min_spec", {**parse_min_spec(raw), "raw": str(raw)}, field)
    if "registry_defaults" in facts:
        raw, field = facts["registry_defaults"]
        put("defaults", azft_defaults(raw), field)
        values["registry_defaults"] = {k: _number(v) for k, v in raw.items()}
    for fact, key in (("deprecation_date", "maas.deprecation_date"), ("retirement_date", "maas.retirement_date")):
        if fact in facts:
            put(key, *facts[fact])
    return values, prov


def nest(flat: dict[str, Any]) -> dict:
    """``{"maas.status": x}`` → ``{"maas": {"status": x}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
