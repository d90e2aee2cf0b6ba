"""`azft catalog refresh`: the live registry's model facts into the user overlay (~/.azft/catalog.yaml).

For each catalog model with a registry asset, ``MLClient(registry_name=...).models.get(name, label="latest")`` (the
registry's discovery, a ``$top=1`` version list and the version GET), then the same fact extraction the generator
uses on the spec files (:mod:`azft.catalog_registry`): registry version, context length, compute list, minimum spec,
``model_specific_defaults``, fine-tuning deprecation and retirement dates, and serverless fine-tuning when the
version is tagged with it. Each fact is recorded with ``source: registry <name>: <model> version <n>`` and the date
read. Facts the live version does not carry are left as the shipped catalog has them.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Callable, Optional

from azft.catalog_registry import nest, registry_values, spec_facts


def _model_doc(entity: Any) -> dict:
    """An SDK ``Model`` as the spec-shaped dict :func:`spec_facts` reads."""
    return {
        "name": entity.name,
        "version": entity.version,
        "tags": dict(entity.tags or {}),
        "properties": dict(entity.properties or {}),
        "system_metadata": getattr(entity, "_system_metadata", None) or {},
        "isArchived": (entity.properties or {}).get("isArchived"),
    }


def live_entry(entity: Any, registry: str, read: str) -> dict:
    """The overlay entry for one live model version: values and their provenance."""
    facts = spec_facts(_model_doc(entity))
    source = {"source": f"registry {registry}: {entity.name} version {entity.version}", "read": read}
    values, prov = registry_values(facts, source)
    values.pop("registry_asset", None)
    prov.pop("registry_asset", None)
    if "maas_finetuning" in facts and facts["maas_finetuning"][0]:
        values["maas.status"] = "available"
        prov["maas.status"] = {**source, "field": facts["maas_finetuning"][1]}
        if "maas_regions" in facts:
            values["maas.regions"] = facts["maas_regions"][0]
            prov["maas.regions"] = {**source, "field": facts["maas_regions"][1]}
    elif "retirement_date" in facts:
        values["maas.status"] = "retired"
        prov["maas.status"] = {**source, "field": facts["retirement_date"][1]}
    entry = nest(values)
    entry["provenance"] = prov
    return entry


def registry_client(registry: str = "azureml", env: Optional[dict] = None) -> Any:
    """``MLClient(registry_name=...)`` with azft's credential and retry settings; ``AZFT_AZURE_ENDPOINT`` /
    ``AZFT_AZURE_CA_BUNDLE`` aim it elsewhere (the emulator), as for every other azft client."""
    import os

    from azft.azure.workspace import (
        CA_BUNDLE_ENV,
        ENDPOINT_ENV,
        _cloud_for_endpoint,
        build_credential,
        new_ml_client,
        retry_kwargs,
    )

    env = dict(os.environ if env is None else env)
    endpoint = env.get(ENDPOINT_ENV) or None
    ca = env.get(CA_BUNDLE_ENV) or None
    kw: dict[str, Any] = retry_kwargs(3, 0.5, 10)
    if ca:
        kw["connection_verify"] = ca
    if endpoint:
        cloud, metadata = _cloud_for_endpoint(endpoint)
        kw.update(cloud=cloud, cloud_metadata=metadata)
    return new_ml_client(build_credential(endpoint, env), registry_name=registry, **kw)


def refresh(
    ml_client: Any,
    *,
    models: Optional[list[str]] = None,
    registry: str = "azureml",
    overlay: Optional[Path] = None,
    today: Optional[_dt.date] = None,
    on_event: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Read each catalog model's latest registry version and merge its facts into the user overlay.

    Returns ``{"updated": {id: version}, "missing": {id: reason}, "overlay": path}``.
    """
    import yaml

    from azft.azure.errors import is_not_found
    from azft.catalog import _load, load_catalog, user_catalog_path

    read = (today or _dt.date.today()).isoformat()
    path = Path(overlay or user_catalog_path())
    cat = load_catalog()
    doc = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
    updated: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for mid, info in cat.models.items():
        if models and mid not in models:
            continue
        name = info.registry_name
        if not name or info.local:
            continue
        try:
            entity = ml_client.models.get(name, label="latest")
        except Exception as exc:
            if not is_not_found(exc):
                raise
            missing[mid] = f"{name} is not in registry {registry}"
            on_event(f"{mid}: {missing[mid]}")
            continue
        entry = live_entry(entity, registry, read)
        old = doc.setdefault("models", {}).get(mid) or {}
        merged = {**old, **{k: v for k, v in entry.items() if k != "provenance"}}
        merged["provenance"] = {**(old.get("provenance") or {}), **entry["provenance"]}
        doc["models"][mid] = merged
        updated[mid] = entity.version
        on_event(f"{mid}: {name} version {entity.version}")
    if updated:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# written by `azft catalog refresh` from the live registry; merged over azft's catalog\n"
            + yaml.safe_dump(doc, sort_keys=False),
            encoding="utf-8",
        )
        _load.cache_clear()
    return {"updated": updated, "missing": missing, "overlay": str(path)}
