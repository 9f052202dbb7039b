"""The experiments subpackage's public surface: everything it imports is exported, once."""

from __future__ import annotations

import ast
from pathlib import Path

import target_personalize.engine.experiments as experiments

PACKAGE = Path(experiments.__file__).parent


def test_everything_imported_into_the_package_is_exported_once() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    imported = [
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(experiments.__name__)
        for alias in node.names
    ]
    assert sorted(imported) == sorted(experiments.__all__)
    assert len(set(experiments.__all__)) == len(experiments.__all__)
    for name in experiments.__all__:
        assert hasattr(experiments, name), name


def test_each_module_exports_what_it_defines_publicly() -> None:
    for module in PACKAGE.glob("*.py"):
        if module.name == "__init__.py":
            continue
        tree = ast.parse(module.read_text())
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_")
        }
        exported = next(
            ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__"
        )
        assert defined <= set(exported), module.name
        assert set(exported) <= set(experiments.__all__), module.name
