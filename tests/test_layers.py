"""The import graph: no cycles, and dependencies point downward only (DESIGN.md, Layout)."""

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "quickstudy"

# Lower layers never import higher ones; modules of one layer may import each other.
LAYERS = [
    {"errors", "types", "compilation_cache", "parallel", "cluster"},
    {"envs"},
    {"tasks"},
    {"networks", "objectives"},
    {"rollout", "interop"},
    {"learners"},
    {"presets"},
    {"algorithms"},
    {"evaluation", "tracking"},
    {"runner", "seeds", "sweep"},
    {"reproduce"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the quickstudy modules it imports (``from p import m`` counts as ``p.m``)."""
    paths = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in paths else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[module] = {d for d in found if d.startswith("quickstudy.")}
    return graph


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_package_has_a_layer():
    tops = {_top(m) for m in _imports()} - {""}
    assert tops <= set(RANK), tops - set(RANK)


def test_dependencies_point_downward_only():
    upward = [
        f"{m} -> {d}"
        for m, deps in _imports().items()
        for d in deps
        if _top(m) and _top(d) and RANK[_top(d)] > RANK[_top(m)]
    ]
    assert not upward, upward


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if d == m or d not in graph:
                continue
            if state.get(d) == 1:
                raise AssertionError(" -> ".join([*path[path.index(d) :], d]))
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
