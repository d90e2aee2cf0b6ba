"""What a deployment costs per hour (with where the price comes from) and which instance type can serve a model.

Prices come from the catalog (``deployment_prices:`` and ``skus:``, overridable in ``~/.azft/catalog.yaml``); each
answer says its source and whether it is a guess. A managed online deployment's instance type is checked against the
model's serving memory (``azft.memory.serving_gib``: half-precision weights plus the KV cache of one full-context
sequence, on one GPU, the way a single-GPU scoring server loads it); a size that does not fit is refused with the
sizes that do, cheapest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from azft.errors import UsageError

USABLE_FRACTION = 0.9  # of a GPU's listed memory, left to the model (driver and fragmentation take the rest)


@dataclass
class Price:
    hourly_usd: float
    source: str
    guess: bool

    def describe(self) -> str:
        label = (
            " (a guess: Azure does not publish it outside the portal; set yours in ~/.azft/catalog.yaml)"
            if self.guess
            else ""
        )
        return f"${self.hourly_usd:.2f}/hour, billed while idle — {self.source}{label}"


def serverless_price(cat: Any) -> Price:
    entry = (cat.raw.get("deployment_prices") or {}).get("serverless_finetuned_hosting_per_hour") or {}
    if "usd" not in entry:
        return Price(
            0.0, "no hosting price in the catalog (deployment_prices.serverless_finetuned_hosting_per_hour)", True
        )
    src = str(entry.get("source", "assumed"))
    return Price(float(entry["usd"]), f"catalog deployment_prices ({src})", src == "assumed")


def instance_price(cat: Any, sku: str, count: int = 1) -> Price:
    info = cat.skus.get(sku) or {}
    if info.get("price_per_hour") is None:
        return Price(0.0, f"{sku} has no price in the catalog's skus", True)
    doc = cat.documents.get(str(info.get("source", "")), "")
    return Price(
        round(float(info["price_per_hour"]) * count, 2),
        f"catalog skus.{sku}: pay-as-you-go Linux list price, eastus, November 2026 × {count} instance(s)"
        + (f"; sizes from {doc}" if doc else ""),
        True,
    )


LOCAL_PRICE = Price(0.0, "this machine (no Azure charge)", False)


@dataclass
class Sizing:
    need_gib: Optional[float]
    why_unknown: str
    fitting: list[str]  # instance types that fit, cheapest first

    def fits(self, cat: Any, sku: str) -> bool:
        if self.need_gib is None:
            return True
        gpu = float((cat.skus.get(sku) or {}).get("gpu_memory_gb") or 0)
        return gpu * USABLE_FRACTION >= self.need_gib


def sizing(cat: Any, model_ref: str, context_tokens: Optional[int] = None) -> Sizing:
    """Serving memory of ``model_ref`` (catalog id or local model folder) and the catalog's GPU sizes it fits."""
    from azft.catalog import get_model
    from azft.memory import architecture_for, serving_gib

    try:
        model = get_model(model_ref)
    except Exception as e:  # an unknown model: no estimate, every size allowed, said so
        return Sizing(None, f"model {model_ref!r} unknown to the catalog ({e})", [])
    arch, why = architecture_for(model, cat)
    if arch is None:
        return Sizing(None, why, [])
    ctx = context_tokens or int(getattr(model, "context_length", None) or 4096)
    need = round(serving_gib(arch, ctx), 1)
    sized = Sizing(need, "", [])
    skus = sorted(cat.skus.items(), key=lambda kv: (float(kv[1].get("price_per_hour") or 1e9), kv[0]))
    sized.fitting = [name for name, _ in skus if sized.fits(cat, name)]
    return sized


def choose_instance(cat: Any, model_ref: str, requested: Optional[str]) -> tuple[str, Sizing]:
    """The instance type to serve on: ``requested`` if it fits (UsageError naming the sizes that do otherwise), else
    the cheapest size that fits."""
    s = sizing(cat, model_ref)
    if requested:
        if requested not in cat.skus:
            raise UsageError(
                f"--instance-type {requested} is not a GPU size azft knows",
                hint="known sizes: " + ", ".join(sorted(cat.skus)),
            )
        if not s.fits(cat, requested):
            gpu = cat.skus[requested].get("gpu_memory_gb")
            raise UsageError(
                f"{model_ref} needs about {s.need_gib} GiB of GPU memory to serve; {requested} has {gpu} GB per GPU",
                hint="sizes that fit, cheapest first: " + ", ".join(s.fitting[:6]),
            )
        return requested, s
    if not s.fitting:
        if s.need_gib is None:
            raise UsageError(
                f"cannot size a deployment of {model_ref}: {s.why_unknown}", hint="name one with --instance-type"
            )
        raise UsageError(f"{model_ref} needs about {s.need_gib} GiB of GPU memory; no catalog size fits")
    return s.fitting[0], s
