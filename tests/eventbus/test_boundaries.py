"""The event bus is reusable plumbing: it imports nothing from the project's settings package
or from the apps that use it. Inside it, each module does one job: none grows past about 300
lines, and only the Redis adapter imports `redis`."""

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


PACKAGE = Path(eventbus.__file__).parent
MAX_LINES = 300
REDIS_ADAPTER = {"redis_client.py", "redis_streams.py", "redis_groups.py", "redis_records.py", "retry_store.py"}


def bus_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_the_event_bus_imports_nothing_from_config_or_the_apps():
    offending = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in bus_modules()
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offending


def test_no_module_of_the_event_bus_grows_past_about_300_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in bus_modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"look for a second job in: {long}"


def test_only_the_redis_adapter_imports_redis():
    importing = {p.name for p in bus_modules() if any(n.split(".")[0] == "redis" for n in imported_modules(p))}
    assert importing == REDIS_ADAPTER
