"""The package's shape: no import circles, thin commands, and the README's Python example runs."""

import ast
import re
from pathlib import Path

import pytest

import mnist_search

PACKAGE = Path(mnist_search.__file__).parent

README = PACKAGE.parent / "README.md"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Package modules this file imports anywhere (top level or inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mnist_search"):
                found.add(target)
                # `from . import x` / `from .spaces import plain` may name modules too
                found.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mnist_search"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in _imports(p) if m in modules and m != name} for name, p in modules.items()
    }


def test_the_import_walker_sees_a_circle():
    """The check below can fail: a made-up pair of modules that import each other is a cycle."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(graph) == [["a", "b"]]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_one_that_imports_it_back():
    graph = _graph()
    assert len(graph) > 20 and "mnist_search.search.engine" in graph["mnist_search.cli.app"] | {
        m for ms in graph.values() for m in ms
    }
    assert _cycles(graph) == []


# The package's floors, lowest first, as the pipeline runs: a module imports only from its own
# floor or one below. "base" is the top-level modules (errors, files, stats, ...); the entry
# point (__main__) stands above everything.
FLOORS = (
    "base",
    "net",
    "catalog",
    "spaces",
    "data",
    "training",
    "search",
    "replay",
    "outputs",
    "frontier",
    "cli",
    "testing",
    "__main__",
)


def _floor(module: str) -> str:
    parts = module.split(".")
    if parts[-1] == "__main__":
        return "__main__"
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "base"


def _climbing(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} -> {b}"
        for a, imported in graph.items()
        for b in imported
        if FLOORS.index(_floor(b)) > FLOORS.index(_floor(a))
    )


def test_the_floor_check_sees_an_import_that_climbs():
    assert _climbing({"mnist_search.net.spec": {"mnist_search.search.records"}}) == [
        "mnist_search.net.spec -> mnist_search.search.records"
    ]


def test_no_import_climbs_the_floors():
    graph = _graph()
    assert {_floor(m) for m in graph} == set(FLOORS), "a folder the order does not name"
    assert _climbing(graph) == []


def test_every_package_says_what_it_offers():
    """Each package's __init__.py has a docstring and exports its face (__all__)."""
    import ast

    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init.parent.name}: no docstring"
        names = [
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        ]
        assert "__all__" in names, f"{init.parent.name}: no __all__"


def test_commands_are_thin():
    """A command declares its options, calls the library once and renders: its body is short."""
    import inspect
    import textwrap

    from mnist_search.cli.app import app

    commands = [c.callback for c in app.registered_commands]
    assert len(commands) == 8
    for func in commands:
        (f,) = ast.parse(textwrap.dedent(inspect.getsource(func))).body
        body = f.body[1:] if isinstance(f.body[0], ast.Expr) else f.body  # docstring aside
        lines = body[-1].end_lineno - body[0].lineno + 1
        assert lines <= 40, f"{f.name}: {lines} lines"


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch, data_dir, capsys):
    text = README.read_text()
    section = text[text.index("## Python API") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_SEARCH_DATA", str(data_dir))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    outcome = namespace["outcome"]
    assert outcome.best is not None and outcome.best.n_params <= 5000
    assert str(outcome.best.n_params) in out
    assert (tmp_path / "best-net" / "state_dict.pt").is_file()
    # the example prints "matches" only when every exported file reproduced the recorded accuracy
    assert namespace["done"].matches and "matches" in out and "MISMATCH" not in out
