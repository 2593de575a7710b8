"""Each class the REST_FRAMEWORK settings name imports first, in a fresh process. A module they
name must not import what reads those settings at import time (rest_framework.views): then
whichever is imported first, a system check reading the pagination class or a view, decides
whether `manage.py` starts or fails with a circular import."""

from __future__ import annotations

import pytest
from django.conf import settings

NAMING_PROJECT_CLASSES = sorted(k for k, v in settings.REST_FRAMEWORK.items() if "config." in str(v))

IMPORT_FIRST = """
import django
django.setup()
from rest_framework.settings import api_settings
getattr(api_settings, {setting!r})
"""


def test_the_settings_name_project_classes():
    assert "DEFAULT_PAGINATION_CLASS" in NAMING_PROJECT_CLASSES


@pytest.mark.parametrize("setting", NAMING_PROJECT_CLASSES)
def test_a_class_the_settings_name_imports_before_anything_else_of_the_api(start, setting):
    result = start("-c", IMPORT_FIRST.format(setting=setting), DEBUG="true")

    assert result.returncode == 0, result.stderr[-2000:]
