"""The package's import graph (grimp): no circles, and every import points down the layers.

  tests            the suites and the GPU check harness (tests/gpu/check.py); may import anything below
  bench            benchmarks and their baselines (bench/reference_sampler.py, bench/mixed_load.py)
  launcher         starts and supervises tritonserver and the adapter
  adapter | builders   independent of each other: the OpenAI front end; the repository writers
  runtime          the code inside Triton's Python backend; imports none of the above

model_repository/*/1/model.py (Triton's thin shells, not importable as a package) may import only runtime.
"""
from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("runtime", "adapter", "builders", "launcher", "bench", "tests")
LAYERS = (grimp.Layer("tests"), grimp.Layer("bench"), grimp.Layer("launcher"),
          grimp.Layer("adapter", "builders", independent=True), grimp.Layer("runtime"))


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def import_cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles(graph):
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle(graph):
    graph.add_import(importer="runtime.errors", imported="runtime.llm.sampling")
    try:
        assert any("runtime.errors" in c and "runtime.llm.sampling" in c for c in import_cycles(graph))
    finally:
        graph.remove_import(importer="runtime.errors", imported="runtime.llm.sampling")


def test_imports_point_down_the_layers(graph):
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS)
    assert [f"{d.importer} -> {d.imported} via {sorted(r.heads)}" for d in illegal for r in d.routes] == []


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_triton_models_import_only_runtime():
    shells = sorted(ROOT.glob("model_repository/*/1/model.py"))
    assert shells
    ours = set(PACKAGES) - {"runtime"}
    wrong = {str(p.relative_to(ROOT)): sorted(m for m in _imported_modules(p) if m.split(".")[0] in ours)
             for p in shells}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_no_private_names_imported_across_packages():
    """`from pkg.mod import _name` only inside pkg: what another package needs is public."""
    crossings = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    other = node.module.split(".")[0]
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    if other in PACKAGES and other != package and private:
                        crossings.append(f"{path.relative_to(ROOT)}: {node.module} {private}")
    assert crossings == []

