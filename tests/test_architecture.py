"""The package's folders are its architecture: each layer imports only from itself and the layers below it.

The import graph is read statically from the source (lazy imports inside functions and imports under
``TYPE_CHECKING`` count: they are dependencies all the same), so the test needs nothing installed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "siri"
README = Path(__file__).resolve().parents[1] / "README.md"

# Lowest first. Equal ranks are siblings that must not import each other.
LAYERS: dict[str, int] = {
    "utils": 0,  # io, config machinery, named random streams
    "config": 1,  # the TrainConfig schema and the shipped presets
    "envs": 2,
    "models": 3,  # what a model is
    "rollout": 4,
    "skills": 5,
    "sft": 6,  # supervised warm start and the tiny-model recipe
    "runs": 6,  # run directory, summary, report
    "rl": 7,
    "serve": 8,  # an OpenAI-compatible endpoint for a model
    "cli": 9,
    "__main__": 10,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        for imp in _imports(path, name):
            parts = imp.split(".")
            for k in range(len(parts), 0, -1):
                candidate = ".".join(parts[:k])
                if candidate in files:
                    if candidate != name and not (path.name == "__init__.py" and candidate.startswith(name + ".")):
                        deps.add(candidate)
                    break
        graph[name] = deps
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__main__"  # the package's own __init__ sits on top


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({_layer(m) for m in _graph()} - set(LAYERS))
    assert not unplaced, f"modules outside the layer table: {unplaced}"


def test_no_module_imports_from_a_layer_above_or_beside_it() -> None:
    bad = []
    for module, deps in sorted(_graph().items()):
        for dep in sorted(deps):
            a, b = _layer(module), _layer(dep)
            if a != b and LAYERS[b] >= LAYERS[a]:
                bad.append(f"{module} -> {dep}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_circles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_each_folder_says_what_it_owns_and_the_readme_lists_it() -> None:
    folders = sorted(p for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    table = README.read_text().split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for folder in folders:
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc.split()) >= 5, f"{folder.name}/__init__.py needs a docstring saying what it owns"
        assert re.search(rf"`src/siri/{folder.name}/`", table), f"README's architecture table lacks {folder.name}/"
        assert folder.name in LAYERS, folder.name
