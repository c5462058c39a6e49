from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from registry.api.base import RegistryView
from registry.api.pagination import PAGE_PARAMETERS, NewestIdFirstCursorPagination
from registry.api.problems import COMMON, problems
from registry.models import Scope
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
    required_scopes = (
        Scope.LOOKUP,
        Scope.SUBMIT,
        Scope.DISPUTE,
        Scope.COMPLIANCE,
        Scope.COMPLIANCE_READ,
    )
    pagination_class = NewestIdFirstCursorPagination  # for the schema: a cursor page

    @extend_schema(
        responses={
            200: AuditEventOutput(many=True),
            **problems(_400="validation_error: bad cursor", **COMMON),
        },
        operation_id="audit_events_list",
        parameters=PAGE_PARAMETERS,
    )
    def get(self, request):
        paginator = NewestIdFirstCursorPagination()
        page = paginator.paginate_queryset(audit_events_for(actor=request.user), request, self)
        return paginator.get_paginated_response(AuditEventOutput(page, many=True).data)
