"""The rule of who may import whom (docs/architecture.md), checked on the source.

Every import of a redline module points down the layer table below or sideways within a layer, no
module imports itself back through others (no cycle), and no redline import hides inside a function:
what a module depends on is at its top, for the reader and for this test.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from redline import tools
from redline.paths import ROOT

PACKAGE = ROOT / "redline"
# Bottom first. A module may import modules of its own layer or a lower one; the longest prefix decides.
LAYERS: list[tuple[str, ...]] = [
    (
        "redline.paths",
        "redline.durations",
        "redline.atomic",
        "redline.topology",
        "redline.safe_yaml",
        "redline.tools",
        "redline.argtypes",
        "redline.credentials",
        "redline.checks",
        "redline.inventory",
        "redline.pg_roles",
        "redline.storage",
    ),
    (
        "redline.generate.model",
        "redline.generate.promql",
        "redline.generate.markdown",
        "redline.generate.humanize",
        "redline.telemetry",
    ),
    ("redline.generate.conventions", "redline.exporters", "redline.receivers"),
    ("redline.generate.alerts", "redline.demo"),
    ("redline.generate.schema", "redline.stack"),
    ("redline.generate.load",),
    ("redline.generate.validate",),
    ("redline.generate.render", "redline.generate.files"),
    ("redline.generate.cli", "redline.console", "redline.verify_target"),
    ("redline.backtest",),
    ("redline.testing",),
    ("redline.cli", "redline.generate", "redline"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} is in no layer of LAYERS"
    return rank


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """(redline modules imported at the top, (line, module) of redline imports inside functions)."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    top: set[str] = set()
    hidden: list[tuple[int, str]] = []

    def targets(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # `from a import b` imports the module a.b when there is one, else names defined in a
            return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        return []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            for name in targets(child):
                if name == "redline" or name.startswith("redline."):
                    if inside:
                        hidden.append((getattr(child, "lineno", 0), name))
                    else:
                        top.add(name)
            visit(child, inside)

    visit(tree, False)
    return top, hidden


def graph() -> dict[str, set[str]]:
    """Module -> the redline modules it imports at its top."""
    return {
        name: {m for m in imports(path)[0] if m in MODULES and m != name} for name, path in MODULES.items()
    }


def test_every_import_points_down_or_sideways() -> None:
    problems = [
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, targets in graph().items()
        for b in targets
        if layer_of(b) > layer_of(a)
    ]
    assert not problems, "upward imports:\n" + "\n".join(sorted(problems))


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[str] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_redline_import_hides_in_a_function() -> None:
    hidden = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in imports(path)[1]
    ]
    assert not hidden, "imports inside functions (move them to the top):\n" + "\n".join(hidden)


@pytest.mark.parametrize("module", ["redline.generate.model", "redline.topology", "redline.paths"])
def test_the_bottom_modules_import_no_project_module_above_them(module: str) -> None:
    assert all(layer_of(b) <= layer_of(module) for b in graph()[module])


def test_the_unit_tier_has_no_binary() -> None:
    """The guard of tests/unit/conftest.py is in force here: promtool is nowhere to be found."""
    assert tools.binary("promtool") is None
    assert tools.binary("prometheus") is None


# What the exporter image (Dockerfile: the `exporters` extra) runs, and what it does not install.
IMAGE_COMMANDS = ("redline.exporters.host.main", "redline.exporters.jobs.cli", "redline.demo.cli")
IMAGE_COMMANDS += ("redline.receivers.pager_sink", "redline.cli")
NOT_IN_IMAGE = ("pydantic", "markdown_it", "grafana_foundation_sdk", "supervisor", "packaging", "jsonnet")
NOT_IN_IMAGE += ("starlette",)


def test_the_exporter_image_runs_without_the_generator_dependencies() -> None:
    """Every command of the image imports with the generator's and the stack's packages made
    unimportable, as in an install of `redline[exporters]`."""
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {NOT_IN_IMAGE!r}:\n"
        "            raise ImportError(f'{name} is not in the exporter image')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for module in {IMAGE_COMMANDS!r}:\n"
        "    __import__(module)\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
