"""The event bus is reusable plumbing: it imports nothing from the project's settings package
or from the apps that use it."""

from __future__ import annotations

import ast
from pathlib import Path

import eventbus

FORBIDDEN = ("config", "orders", "inventory", "notifications", "dashboard", "bench")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_event_bus_imports_nothing_from_config_or_the_apps():
    package = Path(eventbus.__file__).parent
    offending = {
        f"{path.relative_to(package)}: {name}"
        for path in package.rglob("*.py")
        if "migrations" not in path.parts
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offending
