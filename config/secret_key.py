"""The rules for SECRET_KEY, read by config/settings.py at start-up.

A key Django would call weak (security.W009), or one published in this repository's history,
refuses to start in every mode. Only a process that may run without a key (DEBUG, or the
embedded mode with no DATABASE_URL) gets one generated, once per checkout, in var/secret_key:
private to its owner and read again at every start, so sessions survive a restart.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

# Keys that were ever committed to this repository as a default: anyone can sign with them.
PUBLISHED_KEYS = frozenset({"insecure-local-development-key-do-not-use-in-production"})

HOW_TO_MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def secret_key_weakness(key: str) -> str | None:
    """Why `key` must not sign anything, or None if it is fit for production."""
    if key in PUBLISHED_KEYS:
        return "is the development key published in this repository"
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return f"starts with {SECRET_KEY_INSECURE_PREFIX!r}, the mark of a key generated for development"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"is {len(key)} characters long, fewer than {SECRET_KEY_MIN_LENGTH}"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return f"has fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different characters"
    return None


def secret_key_from_environment(key: str, *, may_generate: bool, local_file: Path) -> str:
    """The key to run with: `key` if it is strong; var/secret_key if no key was given and this
    mode may run without one; otherwise ImproperlyConfigured, one line saying what to do."""
    if not key:
        if may_generate:
            return local_secret_key(local_file)
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set: set it to 50 or more random characters ({HOW_TO_MAKE_ONE}); "
            "only DEBUG=true or the embedded mode (no DATABASE_URL) may run without one"
        )
    weakness = secret_key_weakness(key)
    if weakness:
        raise ImproperlyConfigured(
            f"SECRET_KEY {weakness}: set it to 50 or more random characters ({HOW_TO_MAKE_ONE})"
            + ("" if not may_generate else ", or unset it to use a key generated in var/secret_key")
        )
    return key


def local_secret_key(path: Path) -> str:
    """The key kept in `path`, generated on first use (mode 0600). Processes that start
    together all end up with the first one written: a key is published complete or not at all,
    and never replaced."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = _create(path)
    weakness = secret_key_weakness(key)
    if weakness:
        raise ImproperlyConfigured(f"the key in {path} {weakness}: delete the file and a new one is generated")
    return key


def _create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            file.write(key + "\n")
        try:
            # A hard link publishes the complete file under its name, and fails if another
            # process got there first: then its key is the one.
            os.link(draft, path)
        except FileExistsError:
            key = path.read_text().strip()
    finally:
        with contextlib.suppress(FileNotFoundError):
            draft.unlink()
    return key
