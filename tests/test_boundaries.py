"""The project's import boundaries (docs/architecture.md): the domain apps meet only through each
other's `events.py` (their published contract); `bulk` and `eventbus` know no app and the event
bus nothing from `config`; nothing imports the benchmark; the domain apps say what they store in
the ORM's words (no SQL text, no Django internals). Inside the event bus each module does one
job: none grows past about 300 lines, and only the Redis adapter imports `redis`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("orders", "inventory", "notifications")
PROJECT = (*APPS, "eventbus", "bulk", "config", "dashboard", "bench")


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def all_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def imports(path: Path) -> set[str]:
    """The project's own modules `path` imports."""
    return {n for n in all_imports(path) if n.split(".")[0] in PROJECT}


def test_an_app_imports_another_apps_events_and_nothing_else_of_it():
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for app in APPS
        for path in modules(app)
        for name in imports(path)
        if name.split(".")[0] in APPS and name.split(".")[0] != app and name.split(".")[1:2] != ["events"]
    }
    assert not wrong


def test_apps_and_plumbing_never_import_the_dashboard_or_the_benchmark():
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for package in (*APPS, "eventbus", "bulk", "config")
        for path in modules(package)
        for name in imports(path)
        if name.split(".")[0] in ("dashboard", "bench")
    }
    assert not wrong


def test_bulk_knows_no_app_no_event_bus_and_no_settings_package():
    wrong = {f"{p.relative_to(ROOT)}: {n}" for p in modules("bulk") for n in imports(p) if n.split(".")[0] != "bulk"}
    assert not wrong


# SQL statements, and the pieces of them a caller would splice in: "x = %s", "status IN (", WHERE.
SQL = re.compile(
    r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|RETURNING|ON\s+CONFLICT|WHERE)\b|=\s*%s|\bIN\s*\("
)


def test_the_domain_apps_hold_no_sql_text_and_touch_no_django_internals():
    wrong = []
    for app in APPS:
        for path in modules(app):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: SQL in a string")
                if isinstance(node, ast.Attribute) and node.attr in ("_state", "run_on_commit"):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert not wrong


# --- the event bus ---------------------------------------------------------------------------------

BUS_MAX_LINES = 300
SUBPACKAGES = ("messages", "redis", "runtime", "store")


def test_the_event_bus_imports_nothing_from_config_or_the_apps():
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules("eventbus")
        for name in imports(path)
        if name.split(".")[0] not in ("eventbus", "bulk")
    }
    assert not wrong


def test_no_module_of_the_event_bus_grows_past_about_300_lines():
    long = {p.name: n for p in modules("eventbus") if (n := len(p.read_text().splitlines())) > BUS_MAX_LINES}
    assert not long, f"look for a second job in: {long}"


def test_only_the_redis_adapter_imports_redis():
    importing = {p.relative_to(ROOT / "eventbus") for p in modules("eventbus")
                 if any(n.split(".")[0] == "redis" for n in all_imports(p))}  # fmt: skip
    assert importing
    assert {p.parts[0] for p in importing} == {"redis"}, importing


def test_the_event_bus_is_its_subpackages_by_role_and_nothing_loose():
    loose = {p.name for p in (ROOT / "eventbus").glob("*.py")} - {"__init__.py", "admin.py", "apps.py", "models.py"}
    assert not loose, f"put each module in one of {SUBPACKAGES}: {loose}"
    assert {p.name for p in (ROOT / "eventbus").iterdir() if (p / "__init__.py").exists()} >= set(SUBPACKAGES)
