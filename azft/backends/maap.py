"""The `maap` backend: fine-tuning on the workspace's own GPU cluster (Models as a Platform).

The job is the pipeline in ``pipelines/finetune.yml`` (azft's components: every method, ZeRO-1/2/3, multi-node with
PyTorch distribution), with ``compute.pipeline: registry`` ``pipelines/registry_chat_completion.yml`` around
Azure's registry ``chat_completion_pipeline``, or with ``compute.pipeline: azure`` Azure's managed fine-tuning job
(``FineTuningJob``, Azure's recipe) on the cluster or on serverless instance types with a queue tier. Before any upload the cluster must exist with a VM size whose GPU
memory holds the plan's estimate (and, for the registry pipeline, one from the model's registry compute list);
``compute.create_cluster: true`` creates it (AmlCompute, min 0 nodes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azft.azure.errors import call, is_not_found, map_error
from azft.backends.azureml import AzureBackend, AzureJob, quiet_sdk
from azft.errors import IncompatibleError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from azft.plan import Plan

__all__ = ["MaapBackend", "AzureJob"]

DEFAULT_SKU = "Standard_NC24ads_A100_v4"


class MaapBackend(AzureBackend):
    name = "maap"
    target = "maap"

    def __init__(self, *args: Any, create_missing_cluster: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        #: The mock backend creates its stand-in cluster without being asked.
        self.create_missing_cluster = create_missing_cluster

    def prepare(self, plan: "Plan") -> None:
        from azft.azure import jobs

        c = plan.spec.compute
        if jobs.is_managed(plan) and not c.cluster and (c.instance_types or c.instance_type):
            return  # Azure's managed job on serverless compute of these instance types: no cluster of ours
        name = jobs.cluster_name(plan)
        ops = self.ml_client.compute
        compute = None
        try:
            with quiet_sdk():
                compute = ops.get(name)
        except Exception as exc:
            if not is_not_found(exc):
                raise map_error(exc, f"reading compute cluster {name}") from None
        if compute is None:
            if not (c.create_cluster or self.create_missing_cluster):
                raise UsageError(
                    f"compute cluster {name} does not exist in workspace {self.ml_client.workspace_name}",
                    hint="set compute.create_cluster: true with compute.instance_type to create it (min 0 nodes), "
                    "or name an existing cluster",
                )
            compute = self._create_cluster(plan, name)
        size = getattr(compute, "size", None)
        if size:
            _check_size(plan, size, f"cluster {name} has VM size {size}")
        if c.instance_type and size and size.lower() != c.instance_type.lower():
            self.on_event(f"cluster {name} is {size}, not {c.instance_type} as the spec says; using the cluster")
        max_nodes = getattr(compute, "max_instances", None)
        if max_nodes is not None and max_nodes < c.instance_count:
            raise IncompatibleError(
                f"cluster {name} scales to {max_nodes} node(s); the spec asks for instance_count {c.instance_count}",
                hint=f"raise the cluster's maximum nodes to {c.instance_count} or lower compute.instance_count",
            )

    def _create_cluster(self, plan: "Plan", name: str):
        from azure.ai.ml.entities import AmlCompute

        c = plan.spec.compute
        size = c.instance_type or (plan.model.allowed_skus[0] if plan.model.allowed_skus else DEFAULT_SKU)
        _check_size(plan, size, f"the new cluster's size {size}")
        cluster = AmlCompute(
            name=name,
            size=size,
            min_instances=0,
            max_instances=max(c.max_nodes or c.instance_count, c.instance_count),
            tier="low_priority" if c.low_priority else "dedicated",
            idle_time_before_scale_down=1800,
            tags={"azft": "true"},
        )
        self.on_event(f"creating compute cluster {name} ({size}, 0-{cluster.max_instances} nodes)")
        with quiet_sdk():
            poller = call(f"creating compute cluster {name}", self.ml_client.compute.begin_create_or_update, cluster)
            return call(f"creating compute cluster {name}", poller.result)


def _check_size(plan: "Plan", size: str, what: str) -> None:
    """The registry's compute list binds Azure's registry pipeline; azft's component needs only enough GPU memory."""
    from azft.catalog import load_catalog
    from azft.plan import check_memory_fit, sizes_that_fit

    allowed = plan.model.allowed_skus
    if plan.spec.compute.pipeline != "azft" and allowed and size.lower() not in {s.lower() for s in allowed}:
        who = "registry pipeline" if plan.spec.compute.pipeline == "registry" else "managed fine-tuning job"
        raise IncompatibleError(
            f"{what}, which is not in {plan.model.display_name}'s registry fine-tuning compute list (Azure's {who} "
            "enforces it); nothing was uploaded",
            hint="compute.cluster: a cluster of one of " + ", ".join(allowed) + ", or compute.pipeline: azft",
        )
    if plan.spec.compute.pipeline != "azft":
        return
    cat = load_catalog()
    known = next((k for k in cat.skus if k.lower() == size.lower()), None)
    problem = check_memory_fit(plan, cat, known) if known else None
    if problem:
        fits = ", ".join(n for n, _, _ in sizes_that_fit(plan, cat))
        raise IncompatibleError(
            f"{what}: {problem}; nothing was uploaded",
            hint=f"a cluster of {fits}" if fits else "method: qlora or DeepSpeed ZeRO-3 offload",
        )
