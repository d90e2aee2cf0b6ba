"""Code rules: ruff and mypy pass with the project's configuration (pyproject.toml), and azft's imports follow the
layering ARCHITECTURE.md states (no cycles, the pure plan imports no backend and no Azure module), and no
function of azft or the components is over 80 lines, no class over 400."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_graph import REPO, cycles, import_graph

ARCHITECTURE = REPO / "ARCHITECTURE.md"


def _tool(name: str) -> str:
    """The tool installed next to this interpreter (the project's venv), else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `pip install -e '.[test]'` installs it")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    res = _run([_tool("ruff"), "check", "--no-cache", "--output-format", "concise", "."])
    assert res.returncode == 0, f"ruff check found problems:\n{res.stdout}{res.stderr}"


def test_the_code_is_formatted_by_ruff():
    res = _run([_tool("ruff"), "format", "--check", "--no-cache", "."])
    assert res.returncode == 0, f"files `ruff format` would change (run it on them):\n{res.stdout}{res.stderr}"


def test_mypy_finds_nothing():
    res = _run([_tool("mypy"), "--no-error-summary"])
    assert res.returncode == 0, f"mypy found problems:\n{res.stdout}{res.stderr}"


# ------------------------------------------------------------------------------------------------ imports


def layer_table() -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """ARCHITECTURE.md's import rules: layer → module patterns, layer → layers it may import."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Import rules", 1)[1].split("\n## ", 1)[0]
    patterns: dict[str, list[str]] = {}
    allowed: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("layer", "") or set(cells[0]) <= {"-"}:
            continue
        layer, mods, may = cells
        patterns[layer] = re.findall(r"`([^`]+)`", mods)
        allowed[layer] = {x.strip() for x in may.split(",") if x.strip()}
    assert patterns, "ARCHITECTURE.md has no import-rules table"
    for layer, may in allowed.items():
        if may == {"every layer"}:
            allowed[layer] = set(patterns)
        unknown = allowed[layer] - set(patterns)
        assert not unknown, f"ARCHITECTURE.md: layer {layer!r} may import unknown layers {sorted(unknown)}"
    return patterns, allowed


def layer_of(module: str, patterns: dict[str, list[str]]) -> list[str]:
    return [layer for layer, pats in patterns.items() if any(fnmatch.fnmatchcase(module, p) for p in pats)]


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "azft modules that import each other in a cycle (lazy imports included):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_plan_imports_no_backend_and_no_azure_module():
    deps = import_graph()["azft.plan"]
    bad = sorted(d for d in deps if d.startswith(("azft.backends", "azft.azure", "azft.emulator")))
    assert not bad, f"azft/plan.py imports {bad}: the plan is pure; backends render it"


def test_every_module_has_exactly_one_layer():
    patterns, _ = layer_table()
    wrong = {m: layer_of(m, patterns) for m in import_graph() if len(layer_of(m, patterns)) != 1}
    assert not wrong, f"modules not in exactly one layer of ARCHITECTURE.md's import rules: {wrong}"


def test_imports_follow_the_layering():
    patterns, allowed = layer_table()
    broken = []
    for module, deps in sorted(import_graph().items()):
        (own,) = layer_of(module, patterns)
        for dep in sorted(deps):
            (theirs,) = layer_of(dep, patterns)
            if theirs != own and theirs not in allowed[own]:
                broken.append(f"{module} ({own}) imports {dep} ({theirs})")
    assert not broken, "imports ARCHITECTURE.md's layering does not allow:\n" + "\n".join(broken)


def test_the_graph_sees_lazy_imports():
    """The rules cover imports inside functions: the CLI's heavy commands import their modules lazily."""
    full, top = import_graph(), import_graph(top_only=True)
    assert "azft.api" in full["azft.cli"] - top["azft.cli"]


# ------------------------------------------------------------------------------------------------ sizes

MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 400


def _oversized(root: Path) -> list[str]:
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kind, limit = "function", MAX_FUNCTION_LINES
            elif isinstance(node, ast.ClassDef):
                kind, limit = "class", MAX_CLASS_LINES
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append(
                    f"{path.relative_to(REPO)}:{node.lineno}: {kind} {node.name} is {lines} lines (at most {limit})"
                )
    return found


def test_no_function_over_80_lines_and_no_class_over_400():
    """Readable pieces: every function of azft and of the components (the recipe included) fits in 80 lines, every
    class in 400."""
    found = _oversized(REPO / "azft") + _oversized(REPO / "components")
    assert not found, "split these into named pieces:\n" + "\n".join(found)


def test_the_recipe_knows_the_tasks_azft_checks():
    """The recipe runs on Azure compute without azft installed, so it keeps its own list of tasks: the same one."""
    import ast

    from azft.data.tasks import TASKS

    tree = ast.parse((REPO / "components" / "finetune" / "src" / "ft_data.py").read_text(encoding="utf-8"))
    recipe = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TASKS" for t in n.targets)
    )
    assert recipe == TASKS, f"components/finetune/src/ft_data.py TASKS {recipe} differ from azft's {TASKS}"
