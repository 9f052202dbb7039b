"""The engine's public surface: everything in __all__ exists, once, in ruff's sorted order."""

from __future__ import annotations

import ast
from pathlib import Path

import target_personalize.engine as engine

ENGINE = Path(engine.__file__).parent


def test_all_names_exist_and_are_unique() -> None:
    assert len(engine.__all__) == len(set(engine.__all__))
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_everything_imported_into_the_package_is_exported() -> None:
    tree = ast.parse((ENGINE / "__init__.py").read_text())
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.startswith("target_personalize")
        for alias in node.names
    }
    assert imported == set(engine.__all__)


def test_the_engine_never_imports_singer_sdk() -> None:
    for module in ENGINE.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.startswith("singer_sdk") for n in names), module.name
