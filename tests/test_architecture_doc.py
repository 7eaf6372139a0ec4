"""ARCHITECTURE.md is the map of the code: every file and function it names must exist, so
a rename that forgets the map fails here instead of misleading the next reader."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")

# `router/service/contacts.py` `route_contact` — a path, optionally followed by a name in it
NAMED = re.compile(r"`((?:router|integrations)/[\w/]+\.py)`(?: `(\w+)`)?")


def defined_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def test_every_file_and_function_the_map_names_exists() -> None:
    named = NAMED.findall(MAP)
    assert len(named) > 20  # the pattern still finds the map's references
    for path_text, name in named:
        path = ROOT / path_text
        assert path.is_file(), f"ARCHITECTURE.md names {path_text}, which does not exist"
        if name:
            assert name in defined_names(path), f"ARCHITECTURE.md: {path_text} has no {name}"


def test_every_package_of_the_layout_is_on_the_map() -> None:
    packages = [
        f"{folder.relative_to(ROOT)}/"
        for base in ("router", "integrations")
        for folder in [ROOT / base, *(ROOT / base).iterdir()]
        if folder.is_dir() and (folder / "__init__.py").is_file()
    ]
    for package in packages:
        assert package in MAP, f"ARCHITECTURE.md does not place {package}"
