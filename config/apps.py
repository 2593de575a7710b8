"""The project's app configs: the project itself (what has to happen once when a process
starts, after the settings are read: importing the settings has no side effects), and the
admin with eventshop's site."""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class ProjectConfig(AppConfig):
    name = "config"
    verbose_name = "eventshop"

    def ready(self) -> None:
        from config import checks  # noqa: F401 - registers the project's system checks
        from config.intrange import check_integer_ranges

        make_sqlite_directories()
        check_integer_ranges()


class AdminConfig(DjangoAdminConfig):
    default_site = "config.admin.SiteAdmin"


def make_sqlite_directories() -> None:
    """SQLite creates a database file but not its directory (var/ on a fresh clone): make it
    before the first connection, for the database and the test database alike."""
    for database in settings.DATABASES.values():
        if database["ENGINE"] != "django.db.backends.sqlite3":
            continue
        for name in (database["NAME"], database.get("TEST", {}).get("NAME")):
            if name and str(name) != ":memory:" and not str(name).startswith("file:"):
                Path(name).parent.mkdir(parents=True, exist_ok=True)
