"""The deployment operations the CLI and scripts share: deploy a job, list, delete, and collect expired ones.

``deploy`` checks everything first (the job finished, the name, the TTL, the instance type against the model's
serving memory, the hourly price against ``max_hourly_usd``) and creates nothing until every check passed. Each
deployment is recorded locally (``records``), tagged on Azure (``azft.job``, ``azft.ttl``, ``azft.expires_at``,
``azft.created_at``) and as tags on the job's MLflow run (``azft.deployment.*``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Optional

from azft.deploy import records
from azft.deploy.costs import LOCAL_PRICE, Price, choose_instance, instance_price, serverless_price
from azft.deploy.records import Deployment
from azft.errors import AzftError, UsageError

# Azure ML endpoint names: 3-32 characters, letters, digits and '-', starting with a letter, not ending with '-'
# (online endpoints; serverless endpoint names follow the same rule in azft).
ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")


def default_name(job: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", job.lower()).strip("-") or "model"
    if not slug[0].isalpha():
        slug = "m-" + slug
    return f"{slug[:27].rstrip('-')}-{hashlib.sha256(job.encode()).hexdigest()[:4]}"


def check_name(name: str) -> str:
    if not ENDPOINT_NAME.match(name or ""):
        raise UsageError(
            f"endpoint name {name[:40]!r} is not valid",
            hint="3-32 characters: letters, digits and '-', starting with a letter, not ending with '-'",
        )
    return name


def _submission(job: str) -> dict:
    from azft.state import check_job_name, lookup_submission

    rec = lookup_submission(check_job_name(job))
    if not rec:
        raise UsageError(
            f"no job named {job!r} was submitted from here", hint="`azft list` shows the jobs this directory knows"
        )
    return rec


def _options(rec: dict) -> dict[str, Any]:
    opts = dict(rec.get("options") or {})
    if "workspace" not in opts and rec.get("azure"):
        opts["workspace"] = rec["azure"]
    return opts


def deploy(
    job: str,
    *,
    name: Optional[str] = None,
    ttl: Optional[str] = None,
    max_hourly_usd: Optional[float] = None,
    instance_type: Optional[str] = None,
) -> dict[str, Any]:
    """Deploy ``job``'s model; the record (as a dict) plus ``price`` (its description)."""
    rec = _submission(job)
    backend = rec.get("backend") or ""
    name = check_name(name or default_name(job))
    ttl_seconds = records.parse_ttl(ttl) if ttl else None
    existing = records.get(name)
    if existing is not None:
        raise UsageError(
            f"a deployment named {name!r} exists already ({existing.kind}, job {existing.job})",
            hint=f"`azft endpoints delete {name}` first, or pick another --name",
        )
    created = records.now()
    dep = Deployment(
        name=name,
        backend=backend,
        kind="local",
        job=job,
        created=created,
        ttl=ttl,
        expires_at=created + ttl_seconds if ttl_seconds else None,
        mlflow_run_id=rec.get("mlflow_run_id"),
        tracking_uri=rec.get("tracking_uri"),
        experiment=rec.get("experiment"),
        options=_options(rec),
    )
    if backend == "local":
        _deploy_local(dep, max_hourly_usd)
    elif backend in ("maas", "maap", "mock"):
        _deploy_azure(dep, max_hourly_usd, instance_type)
    else:
        raise UsageError(f"job {job!r} ran on {backend or 'an unknown backend'}: nothing to deploy")
    records.save(dep)
    _tag_run(dep, "active")
    return dep.to_dict()


def _check_budget(price: Price, limit: Optional[float]) -> None:
    if limit is not None and price.hourly_usd > limit:
        raise UsageError(
            f"this deployment would cost ${price.hourly_usd:.2f}/hour, above --max-hourly-usd "
            f"{limit:.2f}; nothing was created",
            hint=f"price: {price.describe()}",
        )


def _price(dep: Deployment, price: Price) -> None:
    dep.hourly_usd, dep.price_source, dep.price_is_guess = price.hourly_usd, price.source, price.guess


def _deploy_local(dep: Deployment, limit: Optional[float]) -> None:
    from azft.deploy import local

    _check_budget(LOCAL_PRICE, limit)
    from azft.trained.job import TrainedModel

    tm = TrainedModel.from_job(dep.job)  # the job finished and has a model: checked before anything starts
    dep.model = str(tm.model_dir)
    _price(dep, LOCAL_PRICE)
    dep.pid, dep.port = local.start(dep.name, dep.job)
    dep.url = f"http://127.0.0.1:{dep.port}/v1/chat/completions"


def azure_tags(dep: Deployment) -> dict[str, str]:
    tags = {
        records.TAG_JOB: dep.job,
        records.TAG_CREATED: records.iso(dep.created),
        records.TAG_HOURLY: f"{dep.hourly_usd:.2f}",
    }
    if dep.expires_at is not None:
        tags[records.TAG_EXPIRES] = records.iso(dep.expires_at)
        tags[records.TAG_TTL] = str(dep.ttl)
    return tags


def _deploy_azure(dep: Deployment, limit: Optional[float], instance_type: Optional[str]) -> None:
    from azft.catalog import load_catalog
    from azft.deploy import cloud

    cat = load_catalog()
    with cloud.workspace_client(dep.backend, dep.options) as ml:
        model = cloud.job_model(ml, dep.job)
        dep.target = model.target if dep.backend == "mock" else dep.backend
        dep.model = f"azureml:{model.name}:{model.version}"
        dep.options = {**dep.options, "target": dep.target} if dep.backend == "mock" else dep.options
        if dep.target == "maas":
            if instance_type:
                raise UsageError("--instance-type applies to maap deployments; serverless endpoints choose their own")
            dep.kind, price = "serverless", serverless_price(cat)
        else:
            dep.kind = "online"
            dep.instance_type, _ = choose_instance(cat, model.base or model.name, instance_type)
            price = instance_price(cat, dep.instance_type)
        _check_budget(price, limit)
        _price(dep, price)
        ws = getattr(ml, "workspace_name", None)
        dep.workspace = {
            "workspace": ws,
            "subscription_id": getattr(ml, "subscription_id", None),
            "resource_group": getattr(ml, "resource_group_name", None),
        }
        if dep.kind == "serverless":
            dep.url = cloud.create_serverless(ml, dep.name, model, azure_tags(dep))
        else:
            dep.url = cloud.create_online(ml, dep.name, model, str(dep.instance_type), azure_tags(dep))


def _tag_run(dep: Deployment, status: str) -> None:
    """Deployment tags on the job's MLflow run (never blocks: the tracker buffers when the store is down)."""
    if not dep.mlflow_run_id:
        return
    try:
        from azft.tracking import Tracker

        tracker = Tracker(dep.tracking_uri, dep.experiment or "azft", quiet=True)
        tags = {
            "azft.deployment.name": dep.name,
            "azft.deployment.status": status,
            "azft.deployment.kind": dep.kind,
            "azft.deployment.backend": dep.backend,
            "azft.deployment.url": dep.url,
            "azft.deployment.hourly_usd": f"{dep.hourly_usd:.2f}",
            "azft.deployment.created_at": records.iso(dep.created),
        }
        if dep.instance_type:
            tags["azft.deployment.instance_type"] = dep.instance_type
        if dep.expires_at is not None:
            tags["azft.deployment.expires_at"] = records.iso(dep.expires_at)
        if status == "deleted":
            tags["azft.deployment.deleted_at"] = records.iso(records.now())
        tracker.set_tags(dep.mlflow_run_id, tags)
    except AzftError:
        pass


def delete(name: str) -> dict[str, Any]:
    """Delete a recorded deployment (Azure resource or local server) and forget it."""
    dep = records.get(name)
    if dep is None:
        raise UsageError(
            f"no deployment named {name!r} is recorded here",
            hint="`azft endpoints list` shows them; `azft endpoints gc` also finds expired ones by their Azure tags",
        )
    existed = remove(dep)
    return {"name": name, "deleted": True, "was_running": existed, "cost_so_far_usd": dep.cost_so_far()}


def remove(dep: Deployment) -> bool:
    if dep.kind == "local":
        from azft.deploy import local

        existed = local.stop(dep.name, dep.pid)
    else:
        from azft.deploy import cloud

        with cloud.workspace_client(dep.backend, dep.options) as ml:
            existed = cloud.delete(ml, dep.kind, dep.name)
    records.forget(dep.name)
    _tag_run(dep, "deleted")
    return existed


def describe(dep: Deployment, at: float) -> dict[str, Any]:
    """A deployment as ``azft endpoints list`` shows it."""
    last = dep.last_call
    if dep.kind == "local":
        from azft.deploy import local

        last = local.last_call(dep.name) or last
    return {
        "name": dep.name,
        "kind": dep.kind,
        "backend": dep.backend,
        "job": dep.job,
        "url": dep.url,
        "instance_type": dep.instance_type,
        "created_at": records.iso(dep.created),
        "age": records.human_duration(dep.age(at)),
        "age_seconds": int(dep.age(at)),
        "last_call_at": records.iso(last) if last else None,
        "hourly_usd": dep.hourly_usd,
        "price_is_guess": dep.price_is_guess,
        "price_source": dep.price_source,
        "cost_so_far_usd": dep.cost_so_far(at),
        "ttl": dep.ttl,
        "expires_at": records.iso(dep.expires_at) if dep.expires_at else None,
        "expired": dep.expired(at),
    }


def list_all(remote: Optional[str] = None) -> list[dict[str, Any]]:
    """The recorded deployments; with ``remote`` (maas, maap, mock) also the workspace's endpoints azft made that
    are not recorded here (deployed from another machine), from their tags."""
    at = records.now()
    rows = [{**describe(d, at), "recorded_here": True} for d in records.load_all()]
    if remote:
        from azft.deploy import cloud

        known = {r["name"] for r in rows}
        options = _remote_options(remote)
        if options is None:
            raise UsageError(
                f"no Azure workspace is configured here for --backend {remote}",
                hint="set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE_NAME, or add a config.json",
            )
        with cloud.workspace_client(remote, options) as ml:
            for ep in cloud.tagged_endpoints(ml):
                if ep["name"] not in known:
                    rows.append({**describe(_from_tags(remote, ep), at), "recorded_here": False})
    return rows


def _from_tags(backend: str, ep: dict[str, Any]) -> Deployment:
    tags = ep["tags"]

    def when(key: str) -> Optional[float]:
        try:
            return records.parse_time(tags[key]) if tags.get(key) else None
        except ValueError:
            return None

    try:
        hourly = float(tags.get(records.TAG_HOURLY) or 0)
    except ValueError:
        hourly = 0.0
    return Deployment(
        name=ep["name"],
        backend=backend,
        kind=ep["kind"],
        job=tags.get(records.TAG_JOB, ""),
        created=when(records.TAG_CREATED) or records.now(),
        expires_at=when(records.TAG_EXPIRES),
        ttl=tags.get(records.TAG_TTL),
        hourly_usd=hourly,
        price_source=f"the endpoint's {records.TAG_HOURLY} tag",
        price_is_guess=True,
    )


def _remote_options(backend: str) -> Optional[dict[str, Any]]:
    """How to reach the workspace this directory resolves (``AZURE_*`` or ``config.json``); None when none is."""
    if backend == "mock":
        return {}
    try:
        from azft.azure.workspace import resolve_workspace

        return {"workspace": resolve_workspace({}).values()}
    except AzftError:
        return None


def gc(*, remote: Optional[str] = "maas") -> dict[str, Any]:
    """Delete every expired deployment: the local records', then (``remote``: maas, maap or mock) the endpoints of
    the workspace this directory resolves whose ``azft.expires_at`` tag has passed, whoever made them."""
    at = records.now()
    deleted, failed = [], []
    for dep in records.load_all():
        if dep.expired(at):
            try:
                remove(dep)
                deleted.append(dep.name)
            except AzftError as e:
                failed.append({"name": dep.name, "error": e.message})
    if remote:
        _gc_remote(remote, at, deleted, failed)
    return {"deleted": deleted, "failed": failed, "now": records.iso(at)}


def _gc_remote(backend: str, at: float, deleted: list[str], failed: list[dict]) -> None:
    """Endpoints with a passed ``azft.expires_at`` tag in the workspace this directory resolves (spec-less:
    ``AZURE_*`` or ``config.json``; the mock: its emulated workspace), made from any machine."""
    from azft.deploy import cloud

    options = _remote_options(backend)
    if options is None:
        return  # no workspace configured here: only the local records were checked
    with cloud.workspace_client(backend, options) as ml:
        for ep in cloud.tagged_endpoints(ml):
            expires = ep["tags"].get(records.TAG_EXPIRES)
            try:
                due = expires is not None and records.parse_time(expires) <= at
            except ValueError:
                due = False
            if not due or ep["name"] in deleted:
                continue
            try:
                cloud.delete(ml, ep["kind"], ep["name"])
                records.forget(ep["name"])
                deleted.append(ep["name"])
            except AzftError as e:
                failed.append({"name": ep["name"], "error": e.message})
