"""Where the Azure ML assets azft ships live: the components, the pipelines and their environments.

One module answers "where is ``components/finetune/component.yml``?" for every caller (the local backend, the maap
job builder, exports), in both layouts azft runs from:

* **installed** (``pip install azft``, a wheel or an sdist): the build copies the repository's ``components/`` and
  ``pipelines/`` into the package, as ``azft/components/`` and ``azft/pipelines/`` (see ``setup.py``), with each
  component's ``additional_includes`` rewritten to reach the installed ``azft`` package;
* **development** (``pip install -e .`` from a checkout): they are the checkout's top-level ``components/`` and
  ``pipelines/``, next to the package.

The installed layout wins when both exist. Nothing here depends on the current directory.

Imports only the standard library and ``azft.errors``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from azft.errors import UsageError

#: The ``azft`` package directory (what a component's ``additional_includes`` brings into its code snapshot).
PACKAGE_DIR = Path(__file__).resolve().parent
#: The directory names, the same in both layouts.
COMPONENTS = "components"
PIPELINES = "pipelines"
ENVIRONMENTS = "environment"  # components/environment/*.conda.yml, shared by the components
#: A file that must exist for a layout to count (the training component every backend but maas runs).
_MARKER = Path(COMPONENTS, "finetune", "component.yml")


def _layouts() -> list[tuple[str, Path]]:
    return [("installed", PACKAGE_DIR), ("checkout", PACKAGE_DIR.parent)]


@lru_cache(maxsize=1)
def assets_root() -> Path:
    """The directory holding ``components/`` and ``pipelines/`` for this installation."""
    for _, root in _layouts():
        if (root / _MARKER).is_file() and (root / PIPELINES).is_dir():
            return root
    tried = ", ".join(str(root / _MARKER) for _, root in _layouts())
    raise UsageError(
        f"azft's Azure ML components are missing from this installation (looked for {tried})",
        hint="reinstall azft (`pip install --force-reinstall azft`); from a checkout, "
        "`pip install -e .` keeps components/ and pipelines/ next to the package",
    )


def layout() -> str:
    """``installed`` or ``checkout``: which layout :func:`assets_root` found."""
    root = assets_root()
    return next(name for name, r in _layouts() if r == root)


def components_dir() -> Path:
    """``components/``: one folder per Azure ML command component, plus the shared ``environment/``."""
    return assets_root() / COMPONENTS


def pipelines_dir() -> Path:
    """``pipelines/``: the Azure ML pipeline jobs composing the components."""
    return assets_root() / PIPELINES


def environments_dir() -> Path:
    """``components/environment/``: the conda files the components' environments are built from."""
    return components_dir() / ENVIRONMENTS


def component_file(name: str) -> Path:
    """``components/<name>/component.yml`` (``finetune``, ``validate_data``, ``evaluate``, ``register_model``)."""
    path = components_dir() / name / "component.yml"
    if not path.is_file():
        known = ", ".join(component_names()) or "none"
        raise UsageError(f"no component {name!r} in {components_dir()}", hint=f"components: {known}")
    return path


def component_names() -> list[str]:
    return sorted(p.parent.name for p in components_dir().glob("*/component.yml"))


def pipeline_file(name: str) -> Path:
    """``pipelines/<name>`` (``finetune.yml``, ``registry_chat_completion.yml``)."""
    path = pipelines_dir() / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in pipelines_dir().glob("*.yml"))) or "none"
        raise UsageError(f"the pipeline {path} is missing from this installation", hint=f"pipelines: {known}")
    return path


def asset_files() -> list[Path]:
    """Every file of the shipped assets (components and pipelines), sorted; for exports and checks."""
    out: list[Path] = []
    for top in (components_dir(), pipelines_dir()):
        out += [p for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(out)
