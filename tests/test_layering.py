"""Imports run one way: the engine uses backends and plugins, plugins use backends, and a
backend depends on nothing of walrus but its own package and the C extensions."""

from __future__ import annotations

import ast
from pathlib import Path

import walrus

PACKAGE = Path(walrus.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_backends_import_only_themselves_and_the_c_extensions() -> None:
    allowed = ("walrus.backends", "walrus._native")
    for path in sorted((PACKAGE / "backends").glob("*.py")):
        for name in imported_modules(path):
            if name == "walrus" or name.startswith("walrus."):
                assert name.startswith(allowed), f"{path.name} imports {name}"
