from rest_framework import serializers

from notifications.models import Notification


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "order_id", "kind", "channel", "subject", "body", "status", "created_at", "sent_at"]
        read_only_fields = fields
