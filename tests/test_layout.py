"""The tests' own layout: folders are packages, conftest.py holds fixtures only, and helpers are
imported from tests.support (a bare ``from conftest import`` works only by sys.path luck)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_fixture(node: ast.AST) -> bool:
    for dec in getattr(node, "decorator_list", []):
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def test_conftest_defines_fixtures_only() -> None:
    tree = ast.parse((TESTS / "conftest.py").read_text(encoding="utf-8"))
    others = [
        node.name for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not _is_fixture(node)
    ]
    assert others == [], f"move these to tests/support/: {others}"


def test_every_test_folder_is_a_package_and_nothing_imports_conftest() -> None:
    bare = {"conftest", "fakebotapi", "feedserver"}
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS)
        if "data" in rel.parts[:1]:
            continue
        if not (path.parent / "__init__.py").exists():
            problems.append(f"{rel}: its folder has no __init__.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            problems += [f"{rel}: imports {n}" for n in names if n.split(".")[0] in bare]
    assert problems == [], "\n".join(problems)
