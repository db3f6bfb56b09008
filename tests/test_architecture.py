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
    "tests/test_queue_handoff.py: gemmalog.engine._queue": (
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


def _closure(graph: dict[str, set[str]], module: str) -> set[str]:
    """Every gemmalog module ``module`` imports, directly or through others."""
    seen: set[str] = set()
    stack = [module]
    while stack:
        for dep in graph.get(stack.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def test_config_imports_no_sink() -> None:
    """The configuration is data: ``config/`` (and what it imports) knows no sink; the sink
    factory (``sinks/factory.py``) reads the configuration, not the other way round."""
    graph = import_graph()
    config = [m for m in graph if m == "gemmalog.config" or m.startswith("gemmalog.config.")]
    assert config
    problems = {
        (module, dep)
        for module in config
        for dep in _closure(graph, module)
        if dep == "gemmalog.sinks" or dep.startswith("gemmalog.sinks.")
    }
    assert problems == set()


#: The leaves: declarations and small helpers every layer may read. They import the standard
#: library (and orjson) and each other, nothing else of gemmalog.
LEAVES = frozenset(
    {
        "gemmalog._coerce",
        "gemmalog._sanitizer",
        "gemmalog._terminal",
        "gemmalog._version",
        "gemmalog.events",
        "gemmalog.formats",
        "gemmalog.levels",
        "gemmalog.notices",
    }
)


def test_the_leaves_import_only_leaves() -> None:
    graph = import_graph()
    assert set(graph) >= LEAVES
    assert {(m, dep) for m in LEAVES for dep in graph[m] if dep not in LEAVES} == set()


def test_context_imports_only_leaves() -> None:
    """``gemmalog.bind`` is on the caller's side, below the processors and the engine: the
    sanitizer it applies is a leaf, not the processor above it."""
    graph = import_graph()
    assert graph["gemmalog._context"] <= LEAVES
    assert "gemmalog._sanitizer" in graph["gemmalog._context"]  # the test sees the import


def test_cli_imports_no_private_module_of_another_package() -> None:
    """``cli/`` uses the public API (``gemmalog.queries``, ``gemmalog.config``, ...), its own
    private modules, and the private leaves (``_terminal``, ``_coerce``), nothing else."""
    files = list((PACKAGE / "cli").rglob("*.py"))
    assert files
    private = [p for path in files for p in _private_imports(path)]
    assert any(p.endswith(": gemmalog.cli._group") for p in private)  # its own are seen
    imported = [(p, p.split(": ", 1)[1]) for p in private]
    problems = [
        p for p, name in imported if not name.startswith("gemmalog.cli.") and name not in LEAVES
    ]
    assert problems == []


#: The engine: the only modules that may reach a pipeline's hand-over (``_put``, the queue's
#: side of it) or its caller-side processor chain (``chain``). Everything else goes through
#: ``Pipeline.emit``, ``Pipeline.defer`` (deferred events) or ``Pipeline.emit_on_listener``.
ENGINE = (
    "gemmalog/engine/_pipeline.py",
    "gemmalog/engine/_queue.py",
    "gemmalog/engine/_listener.py",
)
ENGINE_ONLY = frozenset({"_put", "_put_forced", "chain"})


def _engine_reaches(source: str) -> list[str]:
    """``.chain`` / ``._put`` attributes read or written in ``source`` (``itertools.chain``
    is another thing)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or node.attr not in ENGINE_ONLY:
            continue
        if isinstance(node.value, ast.Name) and node.value.id == "itertools":
            continue
        found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_only_the_engine_touches_a_pipelines_hand_over_and_chain() -> None:
    problems = [
        f"{path.relative_to(REPO)}: {reach}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if str(path.relative_to(REPO)) not in ENGINE
        for reach in _engine_reaches(path.read_text(encoding="utf-8"))
    ]
    assert problems == []


def test_the_engine_reach_finder_finds_one() -> None:
    source = (
        "import itertools\n"
        "def f(pipeline, event):\n"
        "    for proc in pipeline.chain:\n"
        "        event = proc(None, 'info', event)\n"
        "    pipeline._put(event)\n"
        "    return itertools.chain([], [])\n"
    )
    assert _engine_reaches(source) == ["pipeline.chain (line 3)", "pipeline._put (line 5)"]


#: What ``gemmalog/integrations/`` may import of gemmalog at run time, besides its own
#: modules: the public API (``gemmalog``, ``gemmalog.api``), the deferred events' seam
#: (``gemmalog.deferred``: ``Pipeline.defer`` and its payloads, docs/architecture.md), the
#: views (resuming a run's counts) and the stderr notices. Never the engine or a processor.
INTEGRATIONS_MAY_IMPORT = frozenset(
    {"gemmalog", "gemmalog.api", "gemmalog.deferred", "gemmalog.notices", "gemmalog.queries"}
)


def test_integrations_import_only_the_public_api_and_the_deferred_seam() -> None:
    graph = import_graph()
    integrations = {m: deps for m, deps in graph.items() if m.startswith("gemmalog.integrations")}
    assert "gemmalog.integrations.collector" in integrations
    problems = sorted(
        f"{module} imports {dep}"
        for module, deps in integrations.items()
        for dep in deps
        if dep not in INTEGRATIONS_MAY_IMPORT and not dep.startswith("gemmalog.integrations")
    )
    assert problems == []


# -- small rooms: one concept a module ------------------------------------------------------------

#: A module longer than this is a sign that two concepts share it (STYLE.md, "What that means
#: here", 1); a function longer than this is steps that want names.
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

#: Modules that may be longer because they are declarative tables (read as data, not code),
#: and why. Their functions are held to the limit all the same.
DECLARATIVE = {
    "gemmalog/events.py": (
        "the declared event kinds: ENVELOPE and KINDS, every field with its DuckDB type and "
        "its doc, are one table (about 300 lines) that the views, the CSV, the JSON Schema "
        "and docs/events.md are derived from"
    ),
}


def too_long(root: Path = PACKAGE) -> dict[str, list[str]]:
    """Path (``gemmalog/...``) -> what is too long in it: ``module: N lines`` and
    ``name() at line L: N lines`` for each function or method (from ``def`` to its last line;
    a nested function counts in its own right and as part of the one around it)."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        issues = []
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            issues.append(f"module: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    issues.append(f"{node.name}() at line {node.lineno}: {length} lines")
        if issues:
            found[path.relative_to(root.parent).as_posix()] = issues
    return found


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    problems = [
        f"{path}: {issue}"
        for path, issues in too_long().items()
        for issue in issues
        if not (path in DECLARATIVE and issue.startswith("module:"))
    ]
    assert problems == []


def test_every_length_exemption_is_still_needed() -> None:
    found = too_long()
    stale = [path for path in DECLARATIVE if path not in found]
    assert stale == [], "no longer too long: remove from DECLARATIVE"


def test_the_length_finder_finds_a_long_module_and_a_long_function(tmp_path: Path) -> None:
    package = tmp_path / "gemmalog"
    package.mkdir()

    def function(name: str, lines: int, indent: str = "") -> str:
        return f"{indent}def {name}():\n" + "".join(
            f"{indent}    x = {i}\n" for i in range(lines - 1)
        )

    (package / "steps.py").write_text(function("fine", MAX_FUNCTION_LINES))
    (package / "long.py").write_text("class A:\n" + function("run", MAX_FUNCTION_LINES + 1, "    "))
    (package / "table.py").write_text("X = 1\n" * MAX_MODULE_LINES)
    (package / "tables.py").write_text("X = 1\n" * (MAX_MODULE_LINES + 1))
    assert too_long(package) == {
        "gemmalog/long.py": [f"run() at line 2: {MAX_FUNCTION_LINES + 1} lines"],
        "gemmalog/tables.py": [f"module: {MAX_MODULE_LINES + 1} lines"],
    }


# --- docs/architecture.md's layer table, enforced -------------------------------------------

ARCHITECTURE = REPO / "docs" / "architecture.md"


def layer_table() -> dict[str, tuple[list[str], set[str]]]:
    """The table under "## Layers" in docs/architecture.md: part -> (its modules, the parts it
    may import). A module belongs to the part whose module prefix is the longest match."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    table: dict[str, tuple[list[str], set[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4 or cells[0] in {"part", ""}:
            continue
        if set(cells[0]) <= {"-", ":"}:
            continue
        part, modules, may_import = cells[0], cells[1], cells[2]
        names = [m.strip(" `") for m in modules.split(",")]
        allowed = set() if may_import == "nothing" else {p.strip() for p in may_import.split(",")}
        table[part] = (names, allowed)
    return table


def _part_of(module: str, table: dict[str, tuple[list[str], set[str]]]) -> str | None:
    best, length = None, -1
    for part, (names, _) in table.items():
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > length:
                best, length = part, len(name)
    return best


def test_the_layer_table_is_read() -> None:
    table = layer_table()
    assert len(table) >= 10
    for part, (_, allowed) in table.items():
        assert allowed <= set(table), f"{part} names an unknown part: {allowed - set(table)}"


def test_every_module_has_a_layer() -> None:
    table = layer_table()
    assert [m for m in sorted(import_graph()) if _part_of(m, table) is None] == []


def layer_problems(
    graph: dict[str, set[str]], table: dict[str, tuple[list[str], set[str]]]
) -> list[str]:
    """Every import from one part into another that the table does not allow."""
    problems = []
    for module, deps in sorted(graph.items()):
        part = _part_of(module, table)
        for dep in sorted(deps):
            other = _part_of(dep, table)
            if part is None or (other != part and other not in table[part][1]):
                problems.append(f"{module} ({part}) imports {dep} ({other})")
    return problems


def test_each_part_imports_only_what_the_layer_table_allows() -> None:
    assert layer_problems(import_graph(), layer_table()) == []


def test_the_layer_check_finds_an_upward_import() -> None:
    table = {"low": (["a"], set()), "high": (["a.top", "b"], {"low"})}
    graph = {"a.x": {"a.y", "b.z"}, "b.z": {"a.x"}, "a.top.m": {"a.x"}}
    assert layer_problems(graph, table) == ["a.x (low) imports b.z (high)"]
