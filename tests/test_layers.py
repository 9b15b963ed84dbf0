"""The layers, checked on the source (AST only, nothing imported or executed).

- index/ never imports bot/ or telegram: the library must run without the bot;
- no module of bot/, index/, bench/ or tests/ uses a ``_private`` name of another module of
  bot/, index/ or bench/, whether by ``from x import _y`` or as ``x._y`` on an imported module
  (bench's scripts import their siblings bare, ``from query_bench import …``: seen as such);
- no import cycles among the project's modules (module-level imports; those under
  ``if TYPE_CHECKING:`` and inside functions are not run at import time);
- a ``Retriever`` is assembled in index/runtime.py only (``build_retriever``,
  ``Services.retriever()``), so every caller gets the same defaults; tests included;
- no module of bot/ or index/ over MAX_LINES lines (small modules with one job);
- no SQL on the index's tables outside index/storage/ (the tables its migrations create);
- user-facing string tables (``{"en": {...}, "it": {...}}``) and the ``t()`` that reads them
  live in one texts module per package, nowhere else.

Known exceptions are listed by name in ``ALLOWED_*`` with the reason; keep them tiny.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "index", "bench")

# (importing module, imported module, name): private names another lane is still removing.
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()
# Cycles still being untangled elsewhere, each as the sorted tuple of its modules.
ALLOWED_CYCLES: set[tuple[str, ...]] = set()


def _modules(packages: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules(PACKAGES)
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}
# tests/data/ holds a record of how old fixtures were made, run with the code of its day.
TEST_MODULES = {m: p for m, p in _modules(("tests",)).items() if not m.startswith("tests.data")}
TEST_TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in TEST_MODULES.items()}
PATHS = {**MODULES, **TEST_MODULES}


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_pkg = PATHS[module].name == "__init__.py"
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module_level: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements; with ``module_level``, only those run when the module is imported."""
    if not module_level:
        yield from (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
        return
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend([*node.body, *node.orelse, *node.finalbody])
            todo.extend(s for h in node.handlers for s in h.body)
        else:
            for field in ("body", "orelse"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    todo.extend(n for n in inner if isinstance(n, ast.stmt))


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str | None]]:
    """(imported module, name taken from it or None) for every name the statement binds."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield _sibling(module, alias.name), None
        return
    source = _sibling(module, _absolute(module, node)) if not node.level else _absolute(module, node)
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        if sub in MODULES:
            yield sub, None
        else:
            yield source, alias.name


def _sibling(module: str, name: str) -> str:
    """A bare import in a bench script of another script beside it (bench/ is on its path)."""
    if module.startswith("bench.") and _project(f"bench.{name}") is not None:
        return f"bench.{name}"
    return name


def _project(name: str) -> str | None:
    """The project module an import refers to (its nearest existing parent), if any."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def test_index_never_imports_bot_or_telegram():
    bad = []
    for module, tree in TREES.items():
        if not module.startswith("index"):
            continue
        for node in _imports(tree, module_level=False):
            for target, _ in _targets(module, node):
                if target.split(".")[0] in ("bot", "telegram"):
                    bad.append(f"{module} (line {node.lineno}) imports {target}")
    assert not bad, "\n".join(bad)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_uses_another_modules_private_names():
    bad = []
    for module, tree in {**TREES, **TEST_TREES}.items():
        aliases: dict[str, str] = {}  # local name -> project module it is bound to
        for node in _imports(tree, module_level=False):
            for target, name in _targets(module, node):
                owner = _project(target)
                if owner is None or owner == module:
                    continue
                if (
                    name is not None
                    and _private(name)
                    and (module, owner, name) not in ALLOWED_PRIVATE
                ):
                    bad.append(f"{module} (line {node.lineno}): from {owner} import {name}")
                if name is None:
                    if isinstance(node, ast.Import):
                        for alias in node.names:
                            if alias.asname:
                                aliases[alias.asname] = alias.name
                    else:
                        for alias in node.names:
                            aliases[alias.asname or alias.name] = target
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                owner = aliases[node.value.id]
                if (module, owner, node.attr) not in ALLOWED_PRIVATE:
                    bad.append(f"{module} (line {node.lineno}): {owner}.{node.attr}")
    assert not bad, "\n".join(bad)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, tree in TREES.items():
        for node in _imports(tree, module_level=True):
            for target, _ in _targets(module, node):
                owner = _project(target)
                if owner is not None and owner != module:
                    graph[module].add(owner)
                    # Importing a.b.c runs a/__init__ and a/b/__init__ first.
                    parent = owner.rpartition(".")[0]
                    while parent:
                        if parent in MODULES and not _within(module, parent):
                            graph[module].add(parent)
                        parent = parent.rpartition(".")[0]
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                out.append(tuple(sorted(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = [c for c in _cycles(_graph()) if c not in ALLOWED_CYCLES]
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


# Modules that may call ``Retriever(...)``: the factory, and the class itself (``with_params``).
RETRIEVER_BUILDERS = {"index.runtime", "index.search.retrieval"}


def test_retriever_is_built_by_the_runtime_only():
    bad = []
    for module, tree in {**TREES, **TEST_TREES}.items():
        if module in RETRIEVER_BUILDERS:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                if name == "Retriever":
                    bad.append(f"{module} (line {node.lineno}): Retriever(...)")
    assert not bad, "use index.runtime.build_retriever:\n" + "\n".join(bad)


MAX_LINES = 500


def test_no_module_is_over_the_size_limit():
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    big = [f"{m}: {n} lines" for m, n in sizes.items() if n > MAX_LINES and m[:5] != "bench"]
    assert not big, f"split these (over {MAX_LINES} lines):\n" + "\n".join(big)


# Modules outside index/storage/ that may hold SQL on the index's tables, and why.
ALLOWED_SQL = {
    "bench.query_bench": "the store's SQL before the bench, timed as its baseline",
    "bench.sentence_eval": "reads a capture's store read-only, whole, without the package",
}
_SCHEMA = (ROOT / "index" / "storage" / "schema.py").read_text()
INDEX_TABLES = set(re.findall(r"CREATE (?:VIRTUAL )?TABLE (?:IF NOT EXISTS )?(\w+)", _SCHEMA))
_ON_TABLE = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+(?:IF NOT EXISTS\s+)?(?:main\.)?("
    + "|".join(sorted(INDEX_TABLES)) + r")\b", re.IGNORECASE,
)
_STATEMENT = re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\b")


def test_only_storage_writes_sql_on_the_index_tables():
    bad = []
    for module, tree in TREES.items():
        if _within(module, "index.storage") or module in ALLOWED_SQL:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found = _ON_TABLE.search(node.value)
                if found and _STATEMENT.search(node.value):
                    bad.append(f"{module} (line {node.lineno}): {found.group(0)!r}")
    assert not bad, "\n".join(bad)


# Each package's words, and the one t() over them (bot.texts reads its two data modules).
TEXTS_MODULES = {
    "bot.texts": True, "bot.texts.strings": False, "bot.texts.sources": False,
    "bot.digests.texts": True, "bot.alerts.texts": True, "index.render.i18n": True,
}


def test_strings_and_t_live_in_the_texts_modules():
    bad = []
    for module, tree in TREES.items():
        if module.startswith("bench"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in ("t", "_t"):
                if not TEXTS_MODULES.get(module):
                    bad.append(f"{module} (line {node.lineno}): def {node.name}()")
            elif isinstance(node, ast.Dict) and module not in TEXTS_MODULES:
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if {"en", "it"} <= keys and any(isinstance(v, ast.Dict) for v in node.values):
                    bad.append(f"{module} (line {node.lineno}): a table of strings by language")
    assert not bad, "\n".join(bad)


def test_the_checks_see_what_they_check():
    """The scanner finds the modules and imports it claims to judge."""
    assert {"index.storage.store", "bot.state", "index.storage.sqlite"} <= set(MODULES)
    assert set(TEXTS_MODULES) <= set(MODULES)
    assert "tests.search.test_quotes" in TEST_TREES
    assert {"articles", "chunks", "chunks_fts", "runs", "meta"} <= INDEX_TABLES
    assert _ON_TABLE.search("SELECT count(*) FROM chunks") and _STATEMENT.search("SELECT 1")
    assert _sibling("bench.live_bench", "query_bench") == "bench.query_bench"
    graph = _graph()
    assert "index.storage.sqlite" in graph["bot.state"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [("a", "b")]
