"""The `maas` backend: serverless fine-tuning (Models as a Service) through azure-ai-ml.

The job is a ``CustomModelFineTuningJob`` (``jobType: FineTuning``) built by ``azft.azure.jobs.build_maas_job``.
Before anything is uploaded: the catalog's availability/retirement rules (already in the plan's verdict), the
workspace's region against the model's serverless regions, and — only for third-party models sold through Azure
Marketplace — the workspace's marketplace subscription (created when missing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from azft.azure.errors import call, is_not_found, map_error
from azft.backends.azureml import AzureBackend, AzureJob, quiet_sdk
from azft.errors import IncompatibleError

if TYPE_CHECKING:  # pragma: no cover
    from azft.plan import Plan

__all__ = ["MaasBackend", "AzureJob"]


def _norm_region(region: str) -> str:
    return region.lower().replace(" ", "")


class MaasBackend(AzureBackend):
    name = "maas"
    target = "maas"

    def check_region(self, plan: "Plan") -> None:
        regions = [_norm_region(r) for r in (plan.model.maas.regions or [])]
        if not regions:
            return
        region = self.workspace_region()
        if not region or _norm_region(region) in regions:
            return
        message = (
            f"serverless fine-tuning of {plan.model.display_name} is offered in {', '.join(regions)}; "
            f"the workspace {self.ml_client.workspace_name} is in {region}"
        )
        if plan.spec.maas.allow_unavailable:
            self.on_event(message + " — submitting anyway because maas.allow_unavailable is true")
            return
        raise IncompatibleError(
            message + "; nothing was uploaded", hint=f"use a workspace in {regions[0]}, or --backend maap in {region}"
        )

    def prepare(self, plan: "Plan") -> None:
        from azft.azure import jobs

        if not jobs.needs_marketplace_subscription(plan):
            return
        name = jobs.marketplace_subscription_name(plan)
        ops = self.ml_client.marketplace_subscriptions
        try:
            with quiet_sdk():
                ops.get(name)
            return
        except Exception as exc:
            if not is_not_found(exc):
                raise map_error(exc, f"reading marketplace subscription {name}") from None
        from azure.ai.ml.entities import MarketplaceSubscription

        self.on_event(f"subscribing the workspace to {plan.model.display_name} in Azure Marketplace")
        with quiet_sdk():
            sub = MarketplaceSubscription(model_id=jobs.marketplace_model_id(plan), name=name)
            poller = call(f"creating marketplace subscription {name}", ops.begin_create_or_update, sub)
            call(f"creating marketplace subscription {name}", poller.result)
