"""/api/v1/disputes: filing (any member), the reporting member's response, the officer's
decision, and reads (the two members concerned and officers only)."""

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from registry.api.base import RegistryView
from registry.api.fields import ChoiceField, FreeTextField, TokenField
from registry.api.pagination import PAGE_PARAMETERS, NewestFirstCursorPagination
from registry.api.problems import COMMON, problems
from registry.models import Dispute, DisputeStatus, IdentifierKind, Scope
from registry.selectors.disputes import dispute_effective_status, dispute_get, dispute_list
from registry.services.disputes import dispute_decide, dispute_file, dispute_respond

STATEMENT_MAX = 4000


class DisputeIdentifierInput(serializers.Serializer):
    kind = ChoiceField(choices=IdentifierKind.choices)
    token = TokenField()


class DisputeFileInput(serializers.Serializer):
    case_id = serializers.UUIDField()
    identifier = DisputeIdentifierInput(
        help_text=_(
            "One of the case's identifiers, as the data subject gave it to the filing member: "
            "the proof that the member acts for that person."
        )
    )
    reason = ChoiceField(choices=Dispute.Reason.choices)
    statement = FreeTextField(
        max_length=STATEMENT_MAX,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("The data subject's statement."),
    )


class DisputeResponseInput(serializers.Serializer):
    position = ChoiceField(choices=Dispute.Position.choices)
    statement = FreeTextField(
        max_length=STATEMENT_MAX, required=False, allow_blank=True, default=""
    )


class DisputeDecisionInput(serializers.Serializer):
    outcome = ChoiceField(choices=[DisputeStatus.UPHELD, DisputeStatus.REJECTED])
    rationale = FreeTextField(max_length=STATEMENT_MAX)
    subject_statement = FreeTextField(
        max_length=STATEMENT_MAX,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Attached to the case when the dispute is rejected; lookups flag it."),
    )


class DisputeListFilter(serializers.Serializer):
    status = ChoiceField(choices=DisputeStatus.choices, required=False)
    case_id = serializers.UUIDField(required=False)


class DisputeOutput(serializers.Serializer):
    """Which member filed and which reported are named only to that member itself and to
    officers (or everyone, when the registry discloses reporters)."""

    id = serializers.UUIDField()
    case_id = serializers.UUIDField()
    case_status = serializers.CharField(source="case.status")
    status = serializers.SerializerMethodField()
    reason = serializers.CharField()
    statement = serializers.CharField()
    filed_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    filed_by_you = serializers.SerializerMethodField()
    about_your_case = serializers.SerializerMethodField()
    filed_by = serializers.SerializerMethodField()
    reporting_member = serializers.SerializerMethodField()
    response_position = serializers.CharField()
    response_statement = serializers.CharField()
    responded_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    rationale = serializers.CharField()

    def _actor(self):
        return self.context["actor"]

    def get_status(self, dispute) -> str:
        return getattr(dispute, "effective_status", None) or dispute_effective_status(dispute)

    def get_filed_by_you(self, dispute) -> bool:
        return dispute.filed_by_id == self._actor().member_id

    def get_about_your_case(self, dispute) -> bool:
        return dispute.case.member_id == self._actor().member_id

    def _named(self, member) -> str | None:
        actor = self._actor()
        if (
            actor.is_officer
            or settings.REGISTRY_DISCLOSE_REPORTERS
            or (member.pk == actor.member_id)
        ):
            return member.code
        return None

    def get_filed_by(self, dispute) -> str | None:
        return self._named(dispute.filed_by)

    def get_reporting_member(self, dispute) -> str | None:
        return self._named(dispute.case.member)


def _out(dispute, request) -> dict:
    return DisputeOutput(dispute, context={"actor": request.user}).data


class DisputePagination(NewestFirstCursorPagination):
    ordering = ("-filed_at", "-pk")


class DisputeListCreateApi(RegistryView):
    """POST files a dispute for a data subject (any member, about a live case, with one of the
    case's identifiers as the proof that it acts for that person). GET lists
    the disputes the member filed or that concern its cases, newest first (officers: all)."""

    pagination_class = DisputePagination  # for the schema: GET answers a cursor page

    @property
    def required_scopes(self):
        # Officers and auditors read every dispute; only members file.
        if self.request.method == "POST":
            return (Scope.DISPUTE,)
        return (Scope.DISPUTE, Scope.COMPLIANCE, Scope.COMPLIANCE_READ)

    @extend_schema(
        operation_id="disputes_file",
        request=DisputeFileInput,
        responses={
            201: DisputeOutput,
            **problems(
                _400="validation_error | raw_pii_rejected",
                _409="conflict: already disputed",
                _422="identifier_not_on_case: no live case with this id carries the identifier",
                **COMMON,
            ),
        },
    )
    def post(self, request):
        data = DisputeFileInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        identifier = fields.pop("identifier")
        dispute = dispute_file(
            actor=request.user, identifier=(identifier["kind"], identifier["token"]), **fields
        )
        return Response(_out(dispute, request), status=201)

    @extend_schema(
        operation_id="disputes_list",
        parameters=[DisputeListFilter, *PAGE_PARAMETERS],
        responses={200: DisputeOutput(many=True), **problems(_400="validation_error", **COMMON)},
    )
    def get(self, request):
        filters = DisputeListFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        disputes = dispute_list(actor=request.user, **filters.validated_data)
        paginator = DisputePagination()
        page = paginator.paginate_queryset(disputes, request, self)
        return paginator.get_paginated_response(
            DisputeOutput(page, many=True, context={"actor": request.user}).data
        )


class DisputeDetailApi(RegistryView):
    """One dispute, to the member that filed it, the member whose case it is, or an officer.
    `status` is `overdue` as soon as the deadline has passed without a decision."""

    required_scopes = (Scope.DISPUTE, Scope.COMPLIANCE, Scope.COMPLIANCE_READ)

    @extend_schema(
        operation_id="disputes_get",
        responses={200: DisputeOutput, **problems(_404="not_found", **COMMON)},
    )
    def get(self, request, dispute_id):
        return Response(_out(dispute_get(actor=request.user, dispute_id=dispute_id), request))


class DisputeResponseApi(RegistryView):
    """The reporting member's answer: `maintain` (while open) or `withdraw_case` (until the
    decision; withdraws the case and closes the dispute as upheld)."""

    required_scopes = (Scope.DISPUTE,)

    @extend_schema(
        operation_id="disputes_respond",
        request=DisputeResponseInput,
        responses={
            200: DisputeOutput,
            **problems(
                _400="validation_error | raw_pii_rejected",
                _404="not_found: not a dispute about one of your cases",
                _409="invalid_transition: decided, or past its deadline",
                **COMMON,
            ),
        },
    )
    def post(self, request, dispute_id):
        data = DisputeResponseInput(data=request.data)
        data.is_valid(raise_exception=True)
        dispute = dispute_respond(actor=request.user, dispute_id=dispute_id, **data.validated_data)
        return Response(_out(dispute, request))


class DisputeDecisionApi(RegistryView):
    """A compliance officer decides: `upheld` removes the case and purges its identifiers;
    `rejected` restores it, with the subject's statement if given. Decided once only."""

    required_scopes = (Scope.COMPLIANCE,)

    @extend_schema(
        operation_id="disputes_decide",
        request=DisputeDecisionInput,
        responses={
            200: DisputeOutput,
            **problems(
                _400="validation_error | raw_pii_rejected",
                _404="not_found",
                _409="invalid_transition: already decided",
                **COMMON,
            ),
        },
    )
    def post(self, request, dispute_id):
        data = DisputeDecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        dispute = dispute_decide(actor=request.user, dispute_id=dispute_id, **data.validated_data)
        return Response(_out(dispute, request))
