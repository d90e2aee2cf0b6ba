"""`azft deploy` and `azft endpoints list|delete|gc`: a finished job's model behind an endpoint, and the guardrails
that keep a forgotten one from billing. Loaded on use; azure-ai-ml and torch are imported only inside commands."""

from __future__ import annotations

import json
from typing import Optional

import click

OUTPUTS = ("table", "json")


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _auth_lines(dep: dict, show_key: bool) -> list[str]:
    name = dep["name"]
    if dep["kind"] == "local":
        where = f".azft/deployments/{name}/key (mode 0600)"
        how = f"send `Authorization: Bearer <key>`; the key is in {where}"
    elif dep["kind"] == "serverless":
        how = (
            f"send `Authorization: Bearer <key>`; read the key with `az ml serverless-endpoint get-credentials "
            f"-n {name}` or azft's own `azft predict --endpoint {name}` (it fetches it)"
        )
    else:
        how = (
            f"send `Authorization: Bearer <key>` (and `azureml-model-deployment: azft`); read the key with "
            f"`az ml online-endpoint get-credentials -n {name}`, or use `azft predict --endpoint {name}`"
        )
    return [how] if not show_key else [how, f"key: {_key(dep)}"]


def _key(dep: dict) -> str:
    from azft.deploy import records

    d = records.Deployment.from_dict(dep)
    if d.kind == "local":
        from azft.deploy import local

        return local.key(d.name)
    from azft.deploy import cloud

    with cloud.workspace_client(d.backend, d.options) as ml:
        return cloud.endpoint_key(ml, d.kind, d.name)


@click.command()
@click.argument("job")
@click.option("--name", default=None, help="Endpoint name (default: from the job name).")
@click.option(
    "--ttl",
    default=None,
    metavar="DURATION",
    help="Delete the deployment after this long (30m, 8h, 2d): the next azft command after the deadline, "
    "or `azft endpoints gc` on any machine (the deadline is a tag on the Azure resource).",
)
@click.option(
    "--max-hourly-usd",
    type=click.FloatRange(0),
    default=None,
    help="Refuse, before anything is created, a deployment costing more per hour.",
)
@click.option("--instance-type", default=None, help="maap: the VM size (default: the cheapest that fits the model).")
@click.option("--show-key", is_flag=True, help="Print the endpoint's key (otherwise only where to get it).")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def deploy(
    job: str,
    name: Optional[str],
    ttl: Optional[str],
    max_hourly_usd: Optional[float],
    instance_type: Optional[str],
    show_key: bool,
    output: str,
) -> int:
    """Serve a finished job's model: maas → a serverless endpoint, maap → a managed online endpoint, local → a
    chat-completions server on 127.0.0.1. Azure deployments bill by the hour whether called or not."""
    from azft.deploy.service import deploy as run

    dep = run(job, name=name, ttl=ttl, max_hourly_usd=max_hourly_usd, instance_type=instance_type)
    if output == "json":
        doc = {k: v for k, v in dep.items() if k not in ("options",)}
        if show_key:
            doc["key"] = _key(dep)
        click.echo(json.dumps(doc, indent=2))
        return 0
    from azft.deploy import records
    from azft.deploy.costs import Price

    con = _console()
    what = {"local": "local server", "serverless": "serverless endpoint", "online": "managed online endpoint"}
    con.print(
        f"[green]deployed[/] {job} as {what[dep['kind']]} [bold]{dep['name']}[/]"
        + (f" on {dep['instance_type']}" if dep.get("instance_type") else "")
    )
    con.print(f"  url:   {dep['url']}")
    for line in _auth_lines(dep, show_key):
        con.print(f"  auth:  {line}")
    price = Price(dep["hourly_usd"], dep["price_source"], dep["price_is_guess"])
    con.print(f"  cost:  {price.describe()}")
    if dep.get("expires_at"):
        con.print(f"  ttl:   {dep['ttl']}, deleted after {records.iso(dep['expires_at'])}")
    elif dep["kind"] != "local":
        con.print(
            "  [yellow]no --ttl:[/] it bills until `azft endpoints delete " + dep["name"] + "` (Azure removes "
            "idle fine-tuned deployments only after 15 days)"
        )
    con.print(f"  try:   azft predict --endpoint {dep['name']} --data prompts.jsonl --out answers.jsonl")
    return 0


@click.group()
def endpoints() -> None:
    """Deployments azft made: list (age, last call, cost so far, TTL), delete, gc (delete expired, for CI)."""


@endpoints.command(name="list")
@click.option(
    "--backend",
    "remote",
    type=click.Choice(["maas", "maap", "mock"]),
    default=None,
    help="Also list the endpoints azft made in this workspace from other machines (read from their tags).",
)
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def list_(remote: Optional[str], output: str) -> int:
    """Recorded deployments with their age, last call (when known), cost so far and TTL."""
    from azft.deploy.service import list_all

    rows = list_all(remote)
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return 0
    if not rows:
        click.echo("no deployments recorded here")
        return 0
    from rich.table import Table

    t = Table()
    for col in ("name", "kind", "job", "age", "last call", "$/hour", "cost so far", "ttl", "expires"):
        t.add_column(col, justify="right" if col in ("$/hour", "cost so far") else "left", overflow="fold")
    for r in rows:
        guess = "~" if r["price_is_guess"] else ""
        t.add_row(
            r["name"] + ("" if r["recorded_here"] else " *"),
            r["kind"],
            r["job"],
            r["age"],
            r["last_call_at"] or "unknown",
            f"{guess}{r['hourly_usd']:.2f}",
            f"{guess}{r['cost_so_far_usd']:.2f}",
            r["ttl"] or "none",
            ("[red]expired[/] " if r["expired"] else "") + (r["expires_at"] or "—"),
        )
    con = _console()
    con.print(t)
    if not all(r["recorded_here"] for r in rows):
        con.print("* deployed from another machine: read from the endpoint's azft tags (last call unknown)")
    if any(r["price_is_guess"] for r in rows):
        con.print("~ a guessed price (catalog `source: assumed`); `--output json` shows each price's source")
    return 0


@endpoints.command()
@click.argument("name")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def delete(name: str, output: str) -> int:
    """Delete a deployment (the Azure endpoint with its deployments, or the local server)."""
    from azft.deploy.service import delete as run

    res = run(name)
    if output == "json":
        click.echo(json.dumps(res, indent=2))
    else:
        click.echo(
            f"deleted {name}"
            + ("" if res["was_running"] else " (it was already gone)")
            + f"; cost so far about ${res['cost_so_far_usd']:.2f}"
        )
    return 0


@endpoints.command()
@click.option(
    "--backend",
    "remote",
    type=click.Choice(["maas", "maap", "mock", "none"]),
    default="maas",
    show_default=True,
    help="Also delete expired azft endpoints found by their azft.expires_at tag in this workspace "
    "(maas/maap: the workspace AZURE_* or config.json name; none: local records only).",
)
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def gc(remote: str, output: str) -> int:
    """Delete every deployment past its TTL (a CI step): the local records, and the workspace's tagged endpoints.
    Exit 4 when one could not be deleted."""
    from azft.deploy.service import gc as run

    res = run(remote=None if remote == "none" else remote)
    if output == "json":
        click.echo(json.dumps(res, indent=2))
    else:
        for n in res["deleted"]:
            click.echo(f"deleted {n} (past its TTL)")
        for f in res["failed"]:
            click.echo(f"could not delete {f['name']}: {f['error']}", err=True)
        if not res["deleted"] and not res["failed"]:
            click.echo("nothing past its TTL")
    return 4 if res["failed"] else 0
