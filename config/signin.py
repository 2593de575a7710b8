"""The API's sign-in: username and password for a token, with failed attempts limited."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from config.rest import JSONParser
from config.throttling import breaker, login_blocked_for


class ObtainTokenView(ObtainAuthToken):
    """POST username and password (JSON or form data), get the user's API token. Anonymous.

    Failed sign-ins are limited per client address and username, per address, and per username
    (config.throttling): past a limit, 429 with Retry-After until the window ends, whether or not
    the password is right. While the counts cannot be read (Redis does not answer), 429 too."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []
    parser_classes = [JSONParser, FormParser]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        username = request.data.get("username") if hasattr(request.data, "get") else None
        wait = login_blocked_for(request, username if isinstance(username, str) else "")
        if wait:
            detail = (
                f"Sign-in is paused while its attempts cannot be counted; try again in {wait} seconds."
                if breaker.is_open()
                else f"Too many sign-in attempts; try again in {wait} seconds."
            )
            return Response(
                {"detail": detail, "code": "throttled"},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(wait)},
            )
        return super().post(request, *args, **kwargs)
