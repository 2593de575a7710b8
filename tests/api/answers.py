"""What every error answer of the API must look like, for the tests to check in one place."""

from __future__ import annotations

from typing import Any


def field_errors(response: Any) -> dict[str, Any]:
    """Check a 400 about fields (JSON, `detail`, `code` "invalid") and return its messages per
    field, without `detail` and `code`."""
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body.pop("code") == "invalid", body
    assert isinstance(body.pop("detail"), str)
    return body
