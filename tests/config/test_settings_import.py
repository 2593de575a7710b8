"""Reading the settings is only reading: importing them writes nothing to disk."""

from __future__ import annotations

from pathlib import Path


def test_importing_the_settings_creates_no_file_or_directory(start, tmp_path: Path):
    result = start("-c", "import config.settings", SECRET_KEY="a-key-given-by-the-environment-" + "0123456789" * 3)

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "var").exists()
