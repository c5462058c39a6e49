"""/api/v1/compliance: what compliance officers (scope `compliance`) and auditors (scope
`compliance_read`) read for regulators and data subjects."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from registry.api.base import RegistryView
from registry.api.fields import ChoiceField, TokenField
from registry.api.problems import COMMON, problems
from registry.models import IdentifierKind, Purpose, Scope, WatchPurpose
from registry.selectors.compliance import subject_access_report


class SubjectAccessInput(serializers.Serializer):
    kind = ChoiceField(choices=IdentifierKind.choices)
    token = TokenField()


class SubjectDisputeOutput(serializers.Serializer):
    dispute_id = serializers.UUIDField()
    status = serializers.CharField()
    reason = serializers.CharField()
    filed_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class SubjectCaseOutput(serializers.Serializer):
    case_id = serializers.UUIDField()
    member = serializers.CharField(help_text="Code of the reporting member.")
    category = serializers.CharField()
    status = serializers.CharField()
    confirmed_at = serializers.DateField()
    expires_at = serializers.DateField()
    created_at = serializers.DateTimeField()
    has_subject_statement = serializers.BooleanField()
    disputes = SubjectDisputeOutput(many=True)


class SubjectLookupOutput(serializers.Serializer):
    lookup_id = serializers.UUIDField()
    member = serializers.CharField(help_text="Code of the member that looked it up.")
    looked_up_at = serializers.DateTimeField()
    purpose = serializers.ChoiceField(choices=Purpose.choices)


class SubjectWatchOutput(serializers.Serializer):
    watch_id = serializers.UUIDField()
    member = serializers.CharField(help_text="Code of the member watching it.")
    watched_since = serializers.DateTimeField()
    purpose = serializers.ChoiceField(choices=WatchPurpose.choices)
    expires_on = serializers.DateField()


class SubjectAccessOutput(serializers.Serializer):
    kind = serializers.CharField()
    fingerprint = serializers.CharField()
    generated_at = serializers.DateTimeField()
    cases = SubjectCaseOutput(many=True)
    lookups = SubjectLookupOutput(many=True)
    watches = SubjectWatchOutput(many=True)


class SubjectAccessApi(RegistryView):
    """What the registry holds about one identifier, for a data subject's request: every case
    still on record (any status), every lookup and every live watch of it, with member, time
    and purpose."""

    required_scopes = (Scope.COMPLIANCE, Scope.COMPLIANCE_READ)

    @extend_schema(
        operation_id="compliance_subject_access",
        parameters=[SubjectAccessInput],
        responses={
            200: SubjectAccessOutput,
            **problems(_400="validation_error | raw_pii_rejected", **COMMON),
        },
    )
    def get(self, request):
        data = SubjectAccessInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        report = subject_access_report(actor=request.user, **data.validated_data)
        return Response(SubjectAccessOutput(report).data)
