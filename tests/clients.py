"""API clients for tests that sign in the way real clients do: an API token in the
Authorization header, checked by the real authentication classes."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def token_client(user: AbstractBaseUser) -> APIClient:
    """A client that sends `user`'s API token (made if the user has none yet)."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
