"""The product packages import one way: no import circle between their modules, counting imports made
inside functions (a circle held together by a function-level import is still a circle); only imports
under `if TYPE_CHECKING:` are left out (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PRODUCT = (
    "bundle", "marketdata", "training", "predictor", "transformer", "monitor", "retrainer", "rollout",
    "registry_readonly", "serving",
)  # fmt: skip


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `packages` under `root` (a package is its
    `__init__`)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every import node, at any depth, except the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        children = list(ast.iter_child_nodes(node))
        if _type_checking(node):
            children = [*node.orelse, node.test]
        stack.extend(children)


def edges(root: Path, packages: tuple[str, ...] = PRODUCT) -> dict[str, set[str]]:
    """Module -> the product modules it imports (the most specific module each import names)."""
    known = modules(root, packages)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            graph[name] |= {t for t in targets if t in known and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_circle_in_the_product_packages():
    assert cycles(edges(REPO)) == []


def test_every_product_package_is_read():
    graph = edges(REPO)
    for package in PRODUCT:
        assert package in graph, f"{package}/__init__.py is missing"
    assert "predictor.model" in graph["predictor.fastpath"]  # what the rule reads is the real graph


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    "b_imports_a",
    [
        "from pkg import a\n",
        "def later():\n    from pkg.a import thing\n",  # function-level: still a circle
        "from . import a\n",
        "import pkg.a\n",
    ],
    ids=["module-level", "function-level", "relative", "plain-import"],
)
def test_a_circle_is_found_however_it_is_imported(tmp_path, b_imports_a):
    root = write(
        tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import x\n", "pkg/b.py": b_imports_a}
    )
    assert cycles(edges(root, ("pkg",))) == [["pkg.a", "pkg.b"]]


def test_imports_only_under_type_checking_are_not_a_circle(tmp_path):
    guarded = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\nelse:\n    pass\n"
    )
    root = write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import x\n", "pkg/b.py": guarded})
    assert cycles(edges(root, ("pkg",))) == []


def test_bundles_outputs_and_runtime_meet_only_under_type_checking():
    """bundle/outputs.py names runtime's types for the type checker; runtime imports outputs."""
    graph = edges(REPO)
    assert "bundle.outputs" in graph["bundle.runtime"]
    assert "bundle.runtime" not in graph["bundle.outputs"]
    assert "bundle.runtime" in (REPO / "bundle" / "outputs.py").read_text()
