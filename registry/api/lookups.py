"""POST /api/v1/lookups (scope `lookup`).

The hot path: 1000 identifiers are validated by one loop (IdentifierListField), looked up by
the service in one statement, and the service's result dicts are sent as they are. The
output serializers below document the answer in the OpenAPI schema; running them over 1000
results would cost more than the database work, so the view does not.
"""

import copy

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from registry.api.base import RegistryView
from registry.api.fields import ChoiceField, FreeTextField, IdentifierListField, TokenField
from registry.api.problems import COMMON, problems
from registry.models import CaseStatus, IdentifierKind, Purpose, Scope
from registry.selectors.lookups import VELOCITY_WINDOWS
from registry.services.lookups import MAX_IDENTIFIERS_PER_LOOKUP, lookup_perform


class LookupInput(serializers.Serializer):
    purpose = ChoiceField(
        choices=Purpose.choices,
        error_messages={"invalid_choice": _("Unknown purpose.")},  # never echo the input
    )
    consent_reference = FreeTextField(max_length=100, required=False, allow_blank=True)
    identifiers = IdentifierListField(
        max_items=MAX_IDENTIFIERS_PER_LOOKUP,
        too_large_code="batch_too_large",
        help_text=_("1 to 1000 objects {kind, token}."),
    )

    def get_fields(self):
        # DRF deep-copies every declared field for each serializer, which rebuilds each field
        # from its arguments: half of this serializer's time on a single-identifier lookup.
        # These fields keep no state while validating, so a shallow copy (an unbound field
        # that bind() then fills in) is enough.
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


class LookupCaseOutput(serializers.Serializer):
    case_id = serializers.UUIDField()
    category = serializers.CharField()
    confirmed_at = serializers.DateField()
    status = serializers.ChoiceField(choices=[CaseStatus.ACTIVE, CaseStatus.DISPUTED])
    reported_by_you = serializers.BooleanField()
    reporting_members = serializers.IntegerField(
        help_text=_("Distinct members with a matchable case for this identifier.")
    )
    has_subject_statement = serializers.BooleanField()
    reported_by = serializers.CharField(
        required=False,
        help_text=_("The reporting member's code; only when the registry discloses reporters."),
    )


# "1h", "24h", ... are not Python names, so the class is built from a dict.
VelocityOutput = type(
    "VelocityOutput",
    (serializers.Serializer,),
    {name: serializers.IntegerField() for name, _window in VELOCITY_WINDOWS},
)


class LookupResultOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=IdentifierKind.choices)
    token = TokenField()
    matched = serializers.BooleanField()
    cases = LookupCaseOutput(many=True)
    velocity = VelocityOutput(
        help_text=_(
            "Other members that looked this identifier up in each window before this "
            "lookup (each member once)."
        )
    )


class LookupOutput(serializers.Serializer):
    lookup_id = serializers.UUIDField()
    results = LookupResultOutput(many=True)


class LookupApi(RegistryView):
    required_scopes = (Scope.LOOKUP,)
    priced_per_item = True  # one unit per identifier

    @extend_schema(
        operation_id="lookups_create",
        description=_(
            "Look up 1 to 1000 identifiers (scope lookup): matching live cases, how many members "
            "reported each identifier, and how many other members looked it up in the last 1 h, 24 "
            "h, 7 d, 30 d and 90 d."
        ),
        request=LookupInput,
        responses={
            200: LookupOutput,
            **problems(_400="validation_error | raw_pii_rejected | batch_too_large", **COMMON),
        },
    )
    def post(self, request):
        data = LookupInput(data=request.data)
        data.is_valid(raise_exception=True)
        self.charge(request, len(data.validated_data["identifiers"]))
        outcome = lookup_perform(
            actor=request.user,
            purpose=data.validated_data["purpose"],
            identifiers=data.validated_data["identifiers"],
            consent_reference=data.validated_data.get("consent_reference", ""),
        )
        return Response({"lookup_id": outcome.lookup_id, "results": outcome.results})
