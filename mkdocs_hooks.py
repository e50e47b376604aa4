"""mkdocs hooks for this site (``hooks:`` in mkdocs.yml).

The API reference (docs/api.md) places the public names in sections by hand. A name of
``walrus.__all__`` that it does not place yet is added under "Other names" at the end, so a new
export is never missing from the reference, even before someone files it under a section.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
API_PAGE = "api.md"


def public_names(init: Path | None = None) -> list[str]:
    """``walrus.__all__``, read from the source (building the docs imports nothing): this
    tree's, or the installed package's where the tree has none (tox builds the site from a
    copy without the sources)."""
    if init is None:
        init = ROOT / "walrus" / "__init__.py"
        spec = None if init.exists() else importlib.util.find_spec("walrus")
        if spec is not None and spec.origin is not None:
            init = Path(spec.origin)
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets):
            return [str(name) for name in ast.literal_eval(node.value)]
    raise RuntimeError(f"{init} has no __all__")


def with_every_public_name(markdown: str, names: list[str]) -> str:
    """``markdown`` plus a ``::: walrus.NAME`` block for each of ``names`` it lacks."""
    placed = set(re.findall(r"^::: walrus\.(\w+)\s*$", markdown, flags=re.MULTILINE))
    missing = [name for name in names if name not in placed]
    if not missing:
        return markdown
    blocks = "\n\n".join(f"::: walrus.{name}" for name in missing)
    return f"{markdown.rstrip()}\n\n## Other names\n\n{blocks}\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != API_PAGE:
        return markdown
    return with_every_public_name(markdown, public_names())
