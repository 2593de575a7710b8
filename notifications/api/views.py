from __future__ import annotations

from typing import Any

from rest_framework import mixins, viewsets

from notifications import selectors
from notifications.api.serializers import NotificationSerializer


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's own notifications, newest first."""

    serializer_class = NotificationSerializer

    def get_queryset(self) -> Any:
        return selectors.notification_list(user=self.request.user)
