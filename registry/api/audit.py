from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
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


PROBLEM = OpenApiResponse(description=_("Problem details (RFC 9457)"))


class AuditEventListApi(RegistryView):
    required_scopes = ("lookup", "submit", "dispute", "compliance", "compliance_read")
    pagination_class = NewestIdFirstCursorPagination  # for the schema: a cursor page

    @extend_schema(
        responses={
            200: AuditEventOutput(many=True),
            400: PROBLEM,
            401: PROBLEM,
            403: PROBLEM,
            429: PROBLEM,
        },
        operation_id="audit_events_list",
    )
    def get(self, request):
        paginator = NewestIdFirstCursorPagination()
        page = paginator.paginate_queryset(audit_events_for(actor=request.user), request, self)
        return paginator.get_paginated_response(AuditEventOutput(page, many=True).data)
