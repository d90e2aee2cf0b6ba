"""The model catalog: `catalog.yaml` (shipped) overlaid by `~/.azft/catalog.yaml` (a user's local corrections).

Pure data access; no network. A model reference in a spec may be a catalog id, a registry asset name or URI, a
Hugging Face hub id, or a local model directory.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

from azft.errors import UsageError

CATALOG_FILE = Path(__file__).with_name("catalog.yaml")
#: azft tasks Azure's managed fine-tuning job takes, and its taskType for each (REST enum FineTuningTaskType).
MANAGED_TASKS = {"chat-completion": "ChatCompletion", "text-generation": "TextCompletion"}


def user_catalog_path() -> Path:
    return Path(os.environ.get("AZFT_CONFIG_DIR", Path.home() / ".azft")) / "catalog.yaml"


@dataclass
class MaasInfo:
    status: str  # available | retired | never | unlisted
    regions: list[str] = field(default_factory=list)
    deprecation_date: Optional[str] = None
    retirement_date: Optional[str] = None
    note: Optional[str] = None
    requires: Optional[str] = None
    deployment_regions: Optional[list[str]] = None
    replacement: Optional[str] = None  # the catalog id Azure names as its replacement
    sources: list[str] = field(default_factory=list)

    def available_on(self, today: Optional[_dt.date] = None) -> bool:
        if self.status != "available":
            return False
        if self.retirement_date:
            return (today or _dt.date.today()) < _dt.date.fromisoformat(self.retirement_date)
        return True


@dataclass
class ModelInfo:
    id: str
    display_name: str
    family: str
    registry_asset: Optional[str]
    hf_id: Optional[str]
    context_length: Optional[int]
    parameters_b: Optional[float]
    maas: MaasInfo
    allowed_skus: list[str]
    min_spec: dict
    defaults: dict
    local: bool = False
    archived: bool = False
    in_catalog: bool = True
    local_path: Optional[str] = None  # a local model directory given in the spec
    registry_version: Optional[int] = None  # the registry model version the catalog's facts were read from
    registry_defaults: dict = field(default_factory=dict)  # model_specific_defaults under the registry's names
    provenance: dict = field(default_factory=dict)  # fact ("maas.status", "maap.allowed_skus", ...) → its source

    def source_of(self, fact: str) -> dict:
        """Where a fact came from: ``{"source", "field", "committed", "read"}`` or ``{"not_published": why}``."""
        return dict(self.provenance.get(fact) or {})

    @property
    def registry_name(self) -> Optional[str]:
        if not self.registry_asset:
            return None
        m = re.search(r"/models/([^/]+)", self.registry_asset)
        return m.group(1) if m else None

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["maas"] = dict(self.maas.__dict__)
        return d


def describe_source(prov: dict, documents: Optional[dict] = None) -> str:
    """One line for a provenance entry: where the fact was read, or why nobody publishes it."""
    if not prov:
        return "no source recorded"
    if prov.get("not_published"):
        return f"not published: {prov['not_published']}"
    src = str(prov.get("source", ""))
    where = (documents or {}).get(src) or src
    parts = [where]
    if prov.get("field"):
        parts.append(f"field {prov['field']}")
    if prov.get("committed"):
        parts.append(f"committed {prov['committed']}")
    if prov.get("read"):
        parts.append(f"read {prov['read']}")
    line = ", ".join(parts)
    if prov.get("history"):
        line += f"; {prov['history']}"
    if prov.get("corrects"):
        line += f"; corrects the registry's {prov['corrects']}"
    return line


@dataclass
class Catalog:
    raw: dict
    models: dict[str, ModelInfo]

    @property
    def skus(self) -> dict[str, dict]:
        return self.raw.get("skus", {})

    @property
    def documents(self) -> dict[str, str]:
        """Source ids (``provenance.*.source``) → the document or repository they name."""
        return self.raw.get("sources", {})

    @property
    def methods(self) -> dict[str, dict]:
        return self.raw["methods"]

    @property
    def backends(self) -> dict[str, dict]:
        return self.raw["backends"]

    def throughput_per_gpu(self, parameters_b: Optional[float]) -> float:
        table = {float(k): float(v) for k, v in self.raw.get("throughput_per_gpu", {}).items()}
        if not table:
            return 1000.0
        size = parameters_b or 7.0
        nearest = min(table, key=lambda k: abs(k - size))
        return table[nearest]


def _load_yaml(path: Path) -> dict:
    import yaml  # PyYAML's C loader: the catalog loads in a few milliseconds

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, "rb") as f:
        return yaml.load(f, Loader=loader) or {}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _model_from(mid: str, d: dict) -> ModelInfo:
    maas = {k: v for k, v in (d.get("maas") or {"status": "never"}).items() if v is not None}
    maas.setdefault("status", "never")
    maas["regions"] = list(maas.get("regions") or [])
    maap = d.get("maap") or {}
    return ModelInfo(
        id=mid,
        display_name=d.get("display_name", mid),
        family=d.get("family", ""),
        registry_asset=d.get("registry_asset"),
        hf_id=d.get("hf_id"),
        context_length=d.get("context_length"),
        parameters_b=d.get("parameters_b"),
        maas=MaasInfo(**{k: v for k, v in maas.items() if k in MaasInfo.__dataclass_fields__}),
        allowed_skus=list(maap.get("allowed_skus") or []),
        min_spec=dict(maap.get("min_spec") or {}),
        defaults=dict(d.get("defaults") or {}),
        local=bool(d.get("local", False)),
        archived=bool(d.get("archived", False)),
        registry_version=d.get("registry_version"),
        registry_defaults=dict(d.get("registry_defaults") or {}),
        provenance=dict(d.get("provenance") or {}),
    )


@lru_cache(maxsize=4)
def _load(user_path: str) -> Catalog:
    raw = _load_yaml(CATALOG_FILE)
    up = Path(user_path)
    if up.is_file():
        raw = _merge(raw, _load_yaml(up))
    models = {mid: _model_from(mid, d) for mid, d in raw.get("models", {}).items()}
    return Catalog(raw=raw, models=models)


def load_catalog() -> Catalog:
    return _load(str(user_catalog_path()))


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", s.lower())


def get_model(ref: str, *, base_dir: Optional[Path] = None) -> ModelInfo:
    """Resolve a model reference. Raises UsageError with suggestions for an unknown id."""
    cat = load_catalog()
    if ref in cat.models:
        return cat.models[ref]
    # registry URI or asset name, hub id, case-insensitive id
    name = ref
    m = re.match(r"azureml://registries/[^/]+/models/([^/]+)", ref)
    if m:
        name = m.group(1)
    name = name.split("/")[-1] if "/" in name and not Path(ref).exists() else name
    for mid, info in cat.models.items():
        keys = {
            _norm(mid),
            _norm(info.display_name),
            _norm(info.registry_name or ""),
            _norm((info.hf_id or "").split("/")[-1]),
        }
        if _norm(name) in keys - {""}:
            return info
    # a local model directory
    p = Path(ref).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    if p.is_dir():
        return _custom_model(ref, local_path=str(p.resolve()))
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", ref) and not ref.startswith((".", "/")):
        # a Hugging Face hub id that is not in the catalog: usable on maap/local through from_pretrained
        return _custom_model(ref, hf_id=ref)
    if m:
        return _custom_model(ref, registry_asset=ref)
    close = difflib.get_close_matches(ref.lower(), list(cat.models), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `azft catalog` for the models azft knows"
    raise UsageError(f"unknown model {ref!r}: not a catalog id, registry asset, hub id or local directory", hint=hint)


def _custom_model(
    ref: str, *, hf_id: str | None = None, local_path: str | None = None, registry_asset: str | None = None
) -> ModelInfo:
    config_ctx = None
    if local_path:
        cfg = Path(local_path) / "config.json"
        if cfg.is_file():
            import json

            try:
                config_ctx = json.loads(cfg.read_text()).get("max_position_embeddings")
            except (OSError, ValueError):
                config_ctx = None
    return ModelInfo(
        id=ref,
        display_name=ref,
        family="custom",
        registry_asset=registry_asset,
        hf_id=hf_id,
        context_length=config_ctx,
        parameters_b=None,
        maas=MaasInfo(status="never", note="serverless fine-tuning takes only Azure catalog models"),
        allowed_skus=[],
        min_spec={},
        defaults={},
        local=bool(local_path),
        in_catalog=False,
        local_path=local_path,
    )
