"""The container tests' marker: `-m "not container"` leaves them out."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "container: builds the image and runs compose.yaml with podman (tests/container)"
    )
