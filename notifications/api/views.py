from __future__ import annotations

from typing import Any

from rest_framework import mixins, viewsets

from config.api import StrictQueryParams
from notifications import selectors
from notifications.api.serializers import NotificationSerializer
from notifications.models import Notification


class NotificationViewSet(StrictQueryParams, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's own notifications, newest first."""

    serializer_class = NotificationSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            # Schema generation has no signed-in user; the model is all it needs (to type `id`).
            return Notification.objects.none()
        return selectors.notification_list(user=self.request.user)
