"""Build step: ship the Azure ML assets inside the package.

``components/`` and ``pipelines/`` sit at the repository's top level (they are Azure ML assets users read, edit and
run with ``az ml``). A wheel built from here copies them into the package as ``azft/components/`` and
``azft/pipelines/``, so an installed azft carries its training component (``azft.resources`` finds them).

A component's ``additional_includes`` names folders relative to its own file. ``../../azft`` (the package, from
``components/<name>/``) is rewritten to the path that reaches the installed package from ``azft/components/<name>/``;
any other include must point inside the shipped assets, or the build fails naming it.

Everything else is in pyproject.toml. Editable installs (``pip install -e .``) skip the copy: the checkout layout is
used as it is.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGE = "azft"
ASSET_DIRS = ("components", "pipelines")
_INCLUDES = re.compile(r"^additional_includes:[ \t]*\n((?:[ \t]+-[^\n]*\n?|[ \t]*#[^\n]*\n)+)", re.MULTILINE)
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def _rewrite_includes(text: str, src_dir: Path, dst_dir: Path, build_pkg: Path, where: str) -> str:
    """The component YAML with each ``additional_includes`` entry pointing at the same thing in the built tree."""
    if re.search(r"^additional_includes:[ \t]*\[", text, re.MULTILINE):
        raise SystemExit(f"{where}: write additional_includes as a block list (one `- path` per line)")

    def entry(line: str) -> str:
        m = re.match(r"^([ \t]+-[ \t]+)(['\"]?)([^'\"#\n]+?)\2([ \t]*(?:#.*)?)$", line)
        if not m:
            return line
        target = (src_dir / m.group(3).strip()).resolve()
        if target == HERE / PACKAGE:
            new = build_pkg
        else:
            rel = next((target.relative_to(HERE) for d in ASSET_DIRS if target.is_relative_to(HERE / d)), None)
            if rel is None:
                raise SystemExit(
                    f"{where}: additional include {m.group(3)!r} is outside the package and the shipped "
                    f"assets ({', '.join(ASSET_DIRS)}), so an installed azft could not resolve it"
                )
            new = build_pkg / rel
        return f"{m.group(1)}{Path(os.path.relpath(new, dst_dir)).as_posix()}{m.group(4)}"

    def block(m: re.Match) -> str:
        lines = m.group(1).split("\n")
        return "additional_includes:\n" + "\n".join(entry(line) for line in lines)

    return _INCLUDES.sub(block, text)


class BuildPyWithAssets(build_py):
    """``build_py``, then the Azure ML assets copied into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        build_pkg = Path(self.build_lib, PACKAGE).resolve()
        for name in ASSET_DIRS:
            src = HERE / name
            if not src.is_dir():
                raise SystemExit(f"{src} is missing: the wheel would have no Azure ML {name}")
            dst = build_pkg / name
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=_SKIP)
        for yml in sorted((build_pkg / "components").glob("*/component.yml")):
            src_dir = HERE / "components" / yml.parent.name
            text = yml.read_text(encoding="utf-8")
            new = _rewrite_includes(text, src_dir, yml.parent, build_pkg, f"components/{yml.parent.name}/component.yml")
            if new != text:
                yml.write_text(new, encoding="utf-8")


setup(cmdclass={"build_py": BuildPyWithAssets})
