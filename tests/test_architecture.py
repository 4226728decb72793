"""The structure ARCHITECTURE.md describes, checked against the code.

Every module's imports (function-local ones included) are parsed; an import may only point to its
own layer or a lower one, the module graph has no cycle, and ``import attacks`` never loads torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("benchmark", "attacks", "defenses")

#: The layers, lowest first: the data flow of ARCHITECTURE.md. A module may import its own layer
#: and the ones before it, never one after it. The first matching prefix names a module's layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core",
        (
            "benchmark.errors",
            "benchmark.registry",
            "benchmark.progress",
            "benchmark.locking",
            "benchmark.interrupts",
            "benchmark.roc",
        ),
    ),
    ("config", ("benchmark.config",)),
    ("data", ("benchmark.data",)),
    ("protocol", ("benchmark.protocol",)),
    ("models", ("benchmark.models",)),
    ("training", ("benchmark.training",)),
    ("store", ("benchmark.store",)),
    ("release", ("benchmark.release",)),
    ("defenses", ("defenses",)),
    ("signals", ("benchmark.signals",)),
    ("attacks", ("attacks",)),
    ("evaluation", ("benchmark.evaluation",)),
    ("experiment", ("benchmark.experiment",)),
    ("tracking", ("benchmark.tracking",)),
    ("reporting", ("benchmark.reporting",)),
    ("cli", ("benchmark.cli",)),
    ("bench", ("benchmark.bench",)),
)

#: The most lines a module may have without saying why in its docstring.
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
}


def layer_of(module: str) -> int:
    if module == "benchmark":
        return 0
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and ARCHITECTURE.md")


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, function-local) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    local_lines = {
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import submodule` imports the submodule when there is one.
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                found.append((resolve(name), node.lineno, node.lineno in local_lines))
    return found


def resolve(name: str) -> str:
    """The project module an import names (``benchmark.x.Thing`` -> ``benchmark.x``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


GRAPH = {module: imports(path) for module, path in MODULES.items()}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_points_to_a_higher_layer():
    upward = [
        f"{module}:{line} imports {target} ({LAYERS[layer_of(target)][0]} is above "
        f"{LAYERS[layer_of(module)][0]})"
        for module, found in GRAPH.items()
        for target, line, _ in found
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_the_module_graph_has_no_cycle():
    edges = {m: {t for t, _, _ in found if t != m} for m, found in GRAPH.items()}
    # A package's __init__ that imports its own submodules (registration) is not a cycle: the
    # submodules import their siblings, never the package itself.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = 2
        stack.pop()
        return None

    for module in sorted(edges):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, " -> ".join(cycle)


def test_function_local_imports_say_why():
    """A function-local import of the project is allowed only with a comment saying why (e.g.
    Opacus takes seconds to import); dodging a cycle is never a reason."""
    silent = []
    for module, found in GRAPH.items():
        lines = MODULES[module].read_text().splitlines()
        for _, line, local in found:
            context = lines[line - 1] + (lines[line - 2] if line >= 2 else "")
            if local and "#" not in context:
                silent.append(f"{module}:{line}")
    assert not silent, "function-local imports without a reason: " + ", ".join(silent)


def test_modules_stay_short_or_say_why():
    long = [
        f"{module} ({n} lines)"
        for module, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
        and "lines because" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert not long, ", ".join(long)


@pytest.mark.parametrize("package", ["attacks", "benchmark.signals.arrays", "benchmark.evaluation"])
def test_pure_numpy_layers_do_not_load_torch(package):
    code = f"import sys, {package}; assert 'torch' not in sys.modules, 'torch loaded'"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_an_upward_import_would_be_caught(tmp_path):
    """The layer check can fail: a training module importing reporting is flagged."""
    assert layer_of("benchmark.reporting.summary") > layer_of("benchmark.training.recipe")
