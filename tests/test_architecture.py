"""The package's shape: no import cycles, and users of the public API import no private module.

Imports are read with ``ast`` (every ``import``, at module level or inside a function, except
those under ``if TYPE_CHECKING:``, which never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gemmalog"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The gemmalog modules ``path`` imports when it runs (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            # the longest gemmalog module the name refers to
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != this:
                found.add(name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in root.rglob("*.py")}
    modules = set(files)
    graph = {name: _imports(path, modules) for name, path in files.items()}
    # `import gemmalog.x` also runs the parent packages' __init__: not an edge worth a cycle
    return {
        name: {dep for dep in deps if not name.startswith(dep + ".")}
        for name, deps in graph.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_cycle_in_the_package() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


#: Tests that must reach one private name, and why (the real situation cannot be made here).
EXEMPT = {
    "tests/test_cache_integrity.py: gemmalog.queries._cache_check": (
        "turns the random block sample off to show what only `cache verify` finds, and places "
        "damage by the block and footer sizes the checks use"
    ),
    "tests/test_cache.py: gemmalog.queries._cache_store": (
        "simulates a run directory another user owns (a refused lock) while the suite runs as root"
    ),
    # Fast paths checked against the algorithm they replace, or shown to be taken: the
    # reference needs the fast path's own tables, which no public call exposes.
    "tests/test_queue_handoff.py: gemmalog._queue": (
        "drives the producer/listener hand-off step by step (wake-up at 64, resume at half the "
        "queue): through the public API the listener thread races the test"
    ),
    "tests/test_reliability_security.py: gemmalog.processors.redact._CUTS": (
        "the boundary rule of the clean-text piece lookup, checked against str.find"
    ),
    "tests/test_reliability_security.py: gemmalog.processors.redact._SAFE_KEYS": (
        "proves the completions' fast path was taken, not only that its output is right"
    ),
    "tests/test_sink_csv.py: gemmalog.sinks.csvrows._timestamp": (
        "the per-second timestamp cache checked against the per-call formatter"
    ),
    "tests/test_sink_csv.py: gemmalog.sinks.csvrows._Timestamps": (
        "the per-second timestamp cache checked against the per-call formatter"
    ),
    "tests/test_events.py: gemmalog.processors.conform._ALL": (
        "ConformToSchema's split check compared with the single intersection it replaced"
    ),
    "tests/test_events.py: gemmalog.processors.conform._TO_CHECK_WITH_RESOURCES": (
        "ConformToSchema's split check compared with the single intersection it replaced"
    ),
}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return skipped


def _private_imports(path: Path) -> list[str]:
    """Private gemmalog modules or names ``path`` imports at run time (type-only imports under
    ``if TYPE_CHECKING:`` never run and are not counted)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gemmalog"):
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names if a.name.startswith("gemmalog")]
        else:
            continue
        for module in modules:
            if any(part.startswith("_") for part in module.split(".")):
                found.append(f"{path.relative_to(REPO)}: {module}")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gemmalog"):
            found += [
                f"{path.relative_to(REPO)}: {node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_")
            ]
    return found


def test_integrations_and_tests_import_no_private_module() -> None:
    users = [*(PACKAGE / "integrations").rglob("*.py"), *(REPO / "tests").glob("*.py")]
    problems = [p for path in users for p in _private_imports(path) if p not in EXEMPT]
    assert problems == []


#: What ``gemmalog/serve/`` may import of gemmalog: the public query and doctor API and its
#: own modules, never the engine (it only reads, in its own process). ``gemmalog.remote``:
#: a root given as a URL is served from the local copy its ``Mirror`` keeps up to date (the
#: copy, its refresh and its errors are remote's; queries, below remote, cannot hold them).
SERVE_MAY_IMPORT = (
    "gemmalog",
    "gemmalog.queries",
    "gemmalog.doctor",
    "gemmalog.config",
    "gemmalog.remote",
)


def test_serve_uses_the_public_query_api_only() -> None:
    graph = import_graph()
    problems = []
    for module, deps in graph.items():
        if module != "gemmalog.serve" and not module.startswith("gemmalog.serve."):
            continue
        for dep in deps:
            if dep.startswith("gemmalog.serve") or dep in SERVE_MAY_IMPORT:
                continue
            problems.append(f"{module} imports {dep}")
    assert problems == []
    serve = PACKAGE / "serve"
    private = [
        p
        for path in serve.rglob("*.py")
        for p in _private_imports(path)
        if not p.split(": ")[1].startswith("gemmalog.serve")
    ]
    assert private == []


def test_nothing_below_serve_imports_it() -> None:
    graph = import_graph()
    users = {
        module
        for module, deps in graph.items()
        if any(d == "gemmalog.serve" or d.startswith("gemmalog.serve.") for d in deps)
        and not module.startswith("gemmalog.serve")
    }
    assert users <= {"gemmalog.cli._serve"}


def test_remote_uses_only_the_public_api() -> None:
    """``gemmalog/remote/`` (push, remote reads, export) may import its own private modules
    and the public API, nothing private of the layers below, and never the CLI above it."""
    files = list((PACKAGE / "remote").rglob("*.py"))
    assert files
    problems = [
        p
        for path in files
        for p in _private_imports(path)
        if not p.split(": ", 1)[1].startswith("gemmalog.remote.")
    ]
    assert problems == []
    graph = import_graph()
    assert not {
        (name, dep)
        for name, deps in graph.items()
        if name.startswith("gemmalog.remote")
        for dep in deps
        if dep.startswith("gemmalog.cli")
    }
