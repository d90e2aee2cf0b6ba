"""`azft catalog`: the models azft knows, each fact with its source; `--sizes`: the GPU size table."""

from __future__ import annotations

from typing import Optional

import click

from azft.catalog_registry import FACTS
from azft.errors import EXIT_OK, UsageError

OUTPUTS = ("table", "yaml", "json")


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _emit(data, output: str) -> None:
    from azft.cli import _emit as emit

    emit(data, output)


def _value(model, fact: str):
    d = model.to_dict()
    d["maap"] = {"allowed_skus": model.allowed_skus, "min_spec": model.min_spec}
    node = d
    for part in fact.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


@click.group(invoke_without_command=True)
@click.option("--model", "-m", "model_id", default=None, help="One model: every fact with where it was read.")
@click.option("--sizes", is_flag=True, help="The Azure GPU VM sizes azft plans with (GPUs, memory, vCPUs, price).")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
@click.pass_context
def catalog(ctx: click.Context, model_id: Optional[str], sizes: bool, output: str) -> int:
    """The models azft knows and what each backend can do with them; each fact names its source.

    Local corrections go in ~/.azft/catalog.yaml; `azft catalog refresh` fills it from the live registry."""
    if ctx.invoked_subcommand:
        return EXIT_OK
    from azft.catalog import get_model, load_catalog

    cat = load_catalog()
    if sizes:
        return _sizes(cat, output)
    if model_id:
        model = get_model(model_id)
        if not model.in_catalog:
            raise UsageError(f"{model_id} is not a catalog model", hint="see `azft catalog` for the models azft knows")
        return _one(cat, model, output)
    if output != "table":
        _emit(
            {
                "checked": cat.raw.get("checked"),
                "sources": cat.documents,
                "models": {k: m.to_dict() for k, m in cat.models.items()},
            },
            output,
        )
        return EXIT_OK
    _table(cat)
    return EXIT_OK


def _maas_cell(m) -> str:
    s = m.maas
    if s.status == "available":
        return f"[green]available[/] in {', '.join(s.regions)}"
    if s.status == "retired":
        out = f"[red]retired {s.retirement_date}[/] (deprecated {s.deprecation_date})"
        return out + (f"; use {s.replacement}" if s.replacement else "")
    if s.status == "never":
        return "[red]never offered[/]"
    return "[yellow]not offered today[/]"


def _table(cat) -> None:
    from rich.table import Table

    t = Table(title=f"azft catalog (Azure facts read {cat.raw.get('checked')})")
    for col in ("model", "registry", "context", "params", "maas (serverless)", "registry compute list"):
        t.add_column(col)
    for m in cat.models.values():
        skus = ", ".join(x.replace("Standard_", "") for x in m.allowed_skus) or (
            "not published" if m.source_of("maap.allowed_skus").get("not_published") else "—"
        )
        ctx = f"{m.context_length // 1024}k" if m.context_length and m.context_length >= 1024 else str(m.context_length)
        reg = f"v{m.registry_version}" if m.registry_version else "—"
        t.add_row(m.id, reg, ctx, f"{m.parameters_b:g}B" if m.parameters_b else "?", _maas_cell(m), skus)
    con = _console()
    con.print(t)
    con.print(
        "Every fact's source: azft catalog --model ID. GPU sizes: azft catalog --sizes. azft's own component "
        "runs on any GPU size whose memory fits; the registry compute list binds Azure's registry pipeline."
    )


def _one(cat, model, output: str) -> int:
    from azft.catalog import describe_source

    rows = [
        {
            "fact": f,
            "value": _value(model, f),
            "source": model.source_of(f),
            "where": describe_source(model.source_of(f), cat.documents),
        }
        for f in FACTS
    ]
    if output != "table":
        _emit({"model": model.id, "facts": rows, "registry_defaults": model.registry_defaults}, output)
        return EXIT_OK
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"{model.id}: facts and where they were read", show_lines=True)
    for col in ("fact", "value", "source"):
        t.add_column(col, overflow="fold")
    for r in rows:
        from azft.render import cell

        style = "[yellow]" if r["source"].get("not_published") else ""
        t.add_row(r["fact"], escape(cell(r["value"])), style + escape(r["where"]))
    _console().print(t)
    return EXIT_OK


def _sizes(cat, output: str) -> int:
    if output != "table":
        _emit({"skus": cat.skus, "sources": {k: v for k, v in cat.documents.items() if k.startswith("vm-")}}, output)
        return EXIT_OK
    from rich.table import Table

    t = Table(title="Azure GPU VM sizes (prices: eastus list, assumed; override with --prices)")
    for col in ("size", "GPU", "GPUs", "GB per GPU", "vCPUs", "RAM GiB", "$/h", "source"):
        t.add_column(col)
    for name, s in cat.skus.items():
        t.add_row(
            name,
            str(s.get("gpu", "")),
            str(s["gpus"]),
            str(s["gpu_memory_gb"]),
            str(s.get("vcpus", "")),
            str(s.get("ram_gb", "")),
            f"{s['price_per_hour']:.2f}" if s.get("price_per_hour") else "—",
            cat.documents.get(s.get("source", ""), s.get("source", "")).split(" (")[0].split("/")[-1],
        )
    _console().print(t)
    return EXIT_OK


@catalog.command("refresh")
@click.option("--registry", default="azureml", show_default=True, help="The Azure ML registry to read.")
@click.option("--model", "-m", "models", multiple=True, help="Only these catalog models (repeatable).")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default="table")
def refresh(registry: str, models: tuple[str, ...], output: str) -> int:
    """Read each catalog model's latest version from the live registry into ~/.azft/catalog.yaml.

    Facts are recorded with their source (registry, model and version) and the date read; `azft catalog --model ID`
    shows them. Sign-in as for every azft command (DefaultAzureCredential)."""
    from azft.azure.errors import azure_errors
    from azft.catalog import load_catalog
    from azft.catalog_refresh import refresh as do_refresh
    from azft.catalog_refresh import registry_client

    unknown = [m for m in models if m not in load_catalog().models]
    if unknown:
        raise UsageError(f"not catalog models: {', '.join(unknown)}", hint="see `azft catalog` for the ids")
    events: list[str] = []
    with azure_errors(f"reading registry {registry}"):
        result = do_refresh(
            registry_client(registry), models=list(models) or None, registry=registry, on_event=events.append
        )
    if output != "table":
        _emit(result, output)
        return EXIT_OK
    con = _console()
    for line in events:
        con.print(f"  {line}")
    con.print(
        f"updated {len(result['updated'])} model(s) in {result['overlay']}"
        + (f"; {len(result['missing'])} not in the registry" if result["missing"] else "")
    )
    return EXIT_OK
