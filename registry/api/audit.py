from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from registry.api.base import RegistryView
from registry.api.pagination import NewestIdFirstCursorPagination
from registry.selectors.audit import audit_events_for


class AuditEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor_type = serializers.CharField()
    api_key_prefix = serializers.CharField()
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    details = serializers.JSONField()


class AuditEventListApi(RegistryView):
    required_scopes = ("lookup", "submit", "dispute", "compliance")

    @extend_schema(responses=AuditEventOutput(many=True), operation_id="audit_events_list")
    def get(self, request):
        paginator = NewestIdFirstCursorPagination()
        page = paginator.paginate_queryset(audit_events_for(actor=request.user), request, self)
        return paginator.get_paginated_response(AuditEventOutput(page, many=True).data)
