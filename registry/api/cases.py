"""/api/v1/cases: submit (one or a batch), list and read one's own, withdraw. Scope `submit`.

Another member's case is 404 `not_found` on every endpoint, exactly like a case that does not
exist (the selectors and services filter by the calling member before anything else).
"""

import functools

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from registry import errors
from registry.api.base import RegistryView
from registry.api.fields import ChoiceField, FreeTextField, IdentifierListField
from registry.api.pagination import PAGE_PARAMETERS, NewestFirstCursorPagination
from registry.api.problems import (
    COMMON,
    exception_handler,
    problems,
    registry_error_body,
)
from registry.models import CaseStatus, Category, Scope
from registry.selectors.cases import case_of_member, cases_of_member
from registry.services.cases import (
    MAX_CASES_PER_BATCH,
    MAX_IDENTIFIERS_PER_CASE,
    NewCase,
    case_submit,
    case_submit_batch,
    case_withdraw,
)
from registry.services.idempotency import (
    IdempotentAnswer,
    idempotency_request_hash,
    idempotent_call,
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=_(
        "A repeat with the same key and body returns the first answer (header "
        "Idempotent-Replayed: true); the same key with another body is 422. Keys are "
        "kept at least 24 hours. A concurrent repeat waits for the first to finish."
    ),
)


# --- input ---------------------------------------------------------------------------------


class AttestationField(serializers.Field):
    """Only the JSON value `true` attests; "true", 1 or "yes" do not."""

    default_error_messages = {
        "attestation_required": _(
            "Attest that the case meets the consortium's standard of "
            "proof by sending attestation: true."
        ),
    }

    def run_validation(self, data=serializers.empty):
        if data is None:  # null is no attestation either (not DRF's generic "null" error)
            self.fail("attestation_required")
        return super().run_validation(data)

    def to_internal_value(self, data):
        if data is not True:
            self.fail("attestation_required")
        return True

    def to_representation(self, value):
        return value


class CaseInput(serializers.Serializer):
    reference = FreeTextField(max_length=100)
    category = serializers.CharField(max_length=40)  # known categories: checked by the service
    confirmed_at = serializers.DateField(input_formats=["iso-8601"])
    identifiers = IdentifierListField(
        max_items=MAX_IDENTIFIERS_PER_CASE,
        unique=True,
        help_text=_("1 to 20 objects {kind, token}; a token at most once."),
    )
    attestation = AttestationField(help_text=_("Must be true."))

    def to_new_case(self) -> NewCase:
        return new_case(self.validated_data)


def new_case(data: dict) -> NewCase:
    return NewCase(
        reference=data["reference"],
        category=data["category"],
        confirmed_at=data["confirmed_at"],
        identifiers=data["identifiers"],
    )


class CaseBatchInput(serializers.Serializer):
    cases = serializers.ListField(child=CaseInput(), max_length=MAX_CASES_PER_BATCH)


class WithdrawInput(serializers.Serializer):
    reason = FreeTextField(max_length=1000)


class CaseListFilters(serializers.Serializer):
    status = ChoiceField(
        choices=CaseStatus.choices,
        required=False,
        error_messages={"invalid_choice": _("Unknown case status.")},  # never echo the input
    )
    category = serializers.CharField(max_length=40, required=False)
    reference = FreeTextField(max_length=100, required=False)

    def validate_category(self, value: str) -> str:
        if not Category.objects.filter(pk=value).exists():
            raise serializers.ValidationError(_("Unknown category."), code="unknown_category")
        return value


# --- output --------------------------------------------------------------------------------


class CaseIdentifierOutput(serializers.Serializer):
    kind = serializers.CharField()
    fingerprint = serializers.CharField()


class CaseOutput(serializers.Serializer):
    """Documents the case object; `to_representation` builds it with plain code, because a
    batch answers with 500 of them (DRF's per-field machinery costs more than the insert)."""

    id = serializers.UUIDField()
    reference = serializers.CharField()
    category = serializers.CharField()
    status = serializers.ChoiceField(choices=CaseStatus.choices)
    confirmed_at = serializers.DateField()
    expires_at = serializers.DateField()
    created_at = serializers.DateTimeField()
    identifiers = CaseIdentifierOutput(many=True)

    def to_representation(self, instance) -> dict:
        return case_body(instance)


_DATETIME = serializers.DateTimeField()


@functools.lru_cache(maxsize=256)
def _datetime_text(value) -> str:
    """DRF's text for a time, in the current time zone. Cached: the cases of one batch share
    their creation time, and the conversion cost a tenth of a 500-case submission."""
    return _DATETIME.to_representation(value)


def case_body(case) -> dict:
    # Freshly created cases carry their identifier rows; read ones come with a prefetch.
    rows = getattr(case, "identifier_rows", None)
    if rows is None:
        rows = case.identifiers.all()
    return {
        "id": str(case.pk),
        "reference": case.reference,
        "category": case.category_id,
        "status": case.status,
        "confirmed_at": case.confirmed_at.isoformat(),
        "expires_at": case.expires_at.isoformat(),
        "created_at": _datetime_text(case.created_at),
        "identifiers": [{"kind": row.kind, "fingerprint": row.fingerprint} for row in rows],
    }


BATCH_OUTPUT = inline_serializer(
    "CaseBatchOutput",
    {
        "results": inline_serializer(
            "CaseBatchResult",
            {
                "index": serializers.IntegerField(),
                "status": serializers.ChoiceField(choices=["created", "error"]),
                "case": CaseOutput(required=False),
                "error": serializers.JSONField(required=False, help_text=_("Problem details")),
            },
            many=True,
        )
    },
)


def _answer(answer: IdempotentAnswer) -> Response:
    response = Response(answer.body, status=answer.status)
    if answer.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _idempotency_key(request) -> str | None:
    return request.headers.get("Idempotency-Key")


# --- views ---------------------------------------------------------------------------------


class CaseCollectionApi(RegistryView):
    required_scopes = (Scope.SUBMIT,)
    pagination_class = NewestFirstCursorPagination  # for the schema: GET answers a cursor page

    @extend_schema(
        operation_id="cases_list",
        description=_(
            "The calling member's own cases, newest first, cursor-paginated; exact filters on "
            "status, category and reference."
        ),
        parameters=[CaseListFilters, *PAGE_PARAMETERS],
        responses={
            200: CaseOutput(many=True),
            **problems(_400="validation_error", **COMMON),
        },
    )
    def get(self, request):
        filters = CaseListFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        cases = cases_of_member(actor=request.user, **filters.validated_data)
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(cases, request, self)
        return paginator.get_paginated_response(CaseOutput(page, many=True).data)

    @extend_schema(
        operation_id="cases_create",
        description=_(
            "Report one confirmed case (scope submit). 409 conflict when the reference is already "
            "used by one of your live cases."
        ),
        request=CaseInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: CaseOutput,
            **problems(
                _400="validation_error | raw_pii_rejected",
                _409="conflict: reference already live",
                _422="idempotency_mismatch",
                **COMMON,
            ),
        },
    )
    def post(self, request):
        def submit() -> tuple[int, dict]:
            data = CaseInput(data=request.data)
            data.is_valid(raise_exception=True)
            case = case_submit(actor=request.user, case=data.to_new_case())
            return status.HTTP_201_CREATED, CaseOutput(case).data

        return _answer(
            idempotent_call(
                actor=request.user,
                key=_idempotency_key(request),
                run=submit,
                request_hash=idempotency_request_hash(path=request.path, body=request.data),
            )
        )


class CaseBatchApi(RegistryView):
    """Up to 500 cases; 200 with one result per case, in order. A case that fails validation
    or conflicts gets its own problem (pointers under /cases/<i>) and the others go in."""

    required_scopes = (Scope.SUBMIT,)

    @extend_schema(
        operation_id="cases_batch_create",
        description=_(
            "Report up to 500 cases; 200 with one result per case, in order. A bad case gets its "
            "own problem (pointers under /cases/<i>) and does not stop the others."
        ),
        request=CaseBatchInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            200: BATCH_OUTPUT,
            **problems(
                _400="validation_error | raw_pii_rejected | batch_too_large",
                _422="idempotency_mismatch",
                **COMMON,
            ),
        },
    )
    def post(self, request):
        return _answer(
            idempotent_call(
                actor=request.user,
                key=_idempotency_key(request),
                run=lambda: (status.HTTP_200_OK, {"results": _submit_batch(request)}),
                request_hash=idempotency_request_hash(path=request.path, body=request.data),
            )
        )


def _submit_batch(request) -> list[dict]:
    items = _batch_items(request.data)
    results: list[dict | None] = [None] * len(items)
    valid: list[tuple[int, NewCase]] = []
    validator = CaseInput()  # one instance for all items: DRF copies its fields once
    for index, item in enumerate(items):
        try:
            valid.append((index, new_case(validator.run_validation(item))))
        except serializers.ValidationError as exc:
            body = exception_handler(serializers.ValidationError(exc.detail), {}).data
            results[index] = _error_result(index, body)
    outcomes = case_submit_batch(actor=request.user, cases=[case for _index, case in valid])
    for (index, _case), outcome in zip(valid, outcomes, strict=True):
        if isinstance(outcome, errors.RegistryError):
            results[index] = _error_result(index, registry_error_body(outcome))
        else:
            results[index] = {"index": index, "status": "created", "case": case_body(outcome)}
    return results


def _batch_items(data) -> list:
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list) or not cases:
        raise errors.ValidationFailed(
            _('Send {"cases": [...]} with 1 to %(n)d cases.') % {"n": MAX_CASES_PER_BATCH},
            [errors.FieldError("/cases", "invalid", _("Expected a non-empty list of cases."))],
        )
    if len(cases) > MAX_CASES_PER_BATCH:
        raise errors.BatchTooLarge(
            _("Send at most %(n)d cases per batch.") % {"n": MAX_CASES_PER_BATCH},
            [errors.FieldError("/cases", "batch_too_large", _("Too many cases."))],
        )
    return cases


def _error_result(index: int, body: dict) -> dict:
    """The case's problem, its pointers made absolute (/cases/<index>/...)."""
    for item in body.get("errors", []):
        pointer = item["pointer"] if item["pointer"] != "/" else ""
        item["pointer"] = f"/cases/{index}{pointer}"
    return {"index": index, "status": "error", "error": body}


class CaseDetailApi(RegistryView):
    required_scopes = (Scope.SUBMIT,)

    @extend_schema(
        operation_id="cases_retrieve",
        description=_("One of your own cases; any other id is 404."),
        responses={200: CaseOutput, **problems(_404="not_found", **COMMON)},
    )
    def get(self, request, case_id):
        return Response(CaseOutput(case_of_member(actor=request.user, case_id=case_id)).data)


class CaseWithdrawApi(RegistryView):
    required_scopes = (Scope.SUBMIT,)

    @extend_schema(
        operation_id="cases_withdraw",
        description=_(
            "Withdraw one of your own active or disputed cases: its identifiers are purged at once "
            "and an undecided dispute is closed as upheld."
        ),
        request=WithdrawInput,
        responses={
            200: CaseOutput,
            **problems(
                _400="validation_error | raw_pii_rejected",
                _404="not_found",
                _409="invalid_transition: not active or disputed",
                **COMMON,
            ),
        },
    )
    def post(self, request, case_id):
        data = WithdrawInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = case_withdraw(
            actor=request.user, case_id=case_id, reason=data.validated_data["reason"]
        )
        return Response(CaseOutput(case).data)
