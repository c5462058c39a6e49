"""/api/v1/watches and /api/v1/alerts (scope `lookup`): a lender watching a borrower's
identifiers for the life of a loan, and the alerts it gets (api.md "Monitoring").

Another member's watch is 404 `not_found`, exactly like one that does not exist.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from registry.api.base import RegistryView
from registry.api.fields import FreeTextField, IdentifierListField
from registry.api.pagination import PAGE_PARAMETERS, NewestFirstCursorPagination
from registry.api.problems import COMMON, problems
from registry.models import AlertType, IdentifierKind, LimitScope, Scope, WatchPurpose
from registry.selectors.watches import (
    MAX_ALERTS_PER_PAGE,
    alert_body,
    alert_cursor,
    alerts_of_member,
    watches_of_member,
)
from registry.services.watches import MAX_IDENTIFIERS_PER_WATCH, watch_create, watch_delete


class WatchInput(serializers.Serializer):
    identifiers = IdentifierListField(
        max_items=MAX_IDENTIFIERS_PER_WATCH,
        too_large_code="batch_too_large",
        help_text=_("1 to 1000 objects {kind, token}."),
    )
    purpose = serializers.ChoiceField(
        choices=WatchPurpose.choices,
        error_messages={"invalid_choice": _("Unknown purpose.")},  # never echo the input
    )
    consent_reference = FreeTextField(
        max_length=100, help_text=_("Your record of the subject's consent to monitoring.")
    )
    label = FreeTextField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text=_("Your own reference (say, the loan number); screened for raw identifiers."),
    )
    expires_on = serializers.DateField(
        required=False,
        input_formats=["iso-8601"],
        help_text=_("Default: 180 days from today; at most 366 days from today."),
    )


class WatchOutput(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=IdentifierKind.choices)
    fingerprint = serializers.CharField()
    label = serializers.CharField()
    expires_on = serializers.DateField()


class WatchListFilters(serializers.Serializer):
    label = FreeTextField(max_length=100, required=False)


class WatchCollectionApi(RegistryView):
    required_scopes = (Scope.LOOKUP,)
    priced_per_item = True  # POST: one unit per identifier; GET: one unit
    pagination_class = NewestFirstCursorPagination  # for the schema: GET answers a cursor page

    def rate_scope(self, request) -> str:
        return LimitScope.WATCH

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method != "POST":
            self.charge(request, 1)

    @extend_schema(
        operation_id="watches_create",
        description=_(
            "Watch 1 to 1000 identifiers (scope lookup) with the subject's consent. Watching an "
            "identifier you already watch extends that watch. One unit per identifier."
        ),
        request=WatchInput,
        responses={
            201: inline_serializer("WatchCreateOutput", {"watches": WatchOutput(many=True)}),
            **problems(_400="validation_error | raw_pii_rejected | batch_too_large", **COMMON),
        },
    )
    def post(self, request):
        data = WatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        self.charge(request, len(data.validated_data["identifiers"]))
        rows = watch_create(actor=request.user, **data.validated_data)
        return Response(
            {"watches": WatchOutput(rows, many=True).data}, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        operation_id="watches_list",
        description=_("Your own live watches, newest first, cursor-paginated; exact label filter."),
        parameters=[WatchListFilters, *PAGE_PARAMETERS],
        responses={200: WatchOutput(many=True), **problems(_400="validation_error", **COMMON)},
    )
    def get(self, request):
        filters = WatchListFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(
            watches_of_member(actor=request.user, **filters.validated_data), request, self
        )
        return paginator.get_paginated_response(WatchOutput(page, many=True).data)


class WatchDetailApi(RegistryView):
    required_scopes = (Scope.LOOKUP,)

    def rate_scope(self, request) -> str:
        return LimitScope.WATCH

    @extend_schema(
        operation_id="watches_destroy",
        description=_("Stop watching: the watch is deleted. Any other id is 404."),
        responses={204: None, **problems(_404="not_found", **COMMON)},
    )
    def delete(self, request, watch_id):
        watch_delete(actor=request.user, watch_id=watch_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertWatchOutput(serializers.Serializer):
    id = serializers.UUIDField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=IdentifierKind.choices)
    fingerprint = serializers.CharField()


class AlertCaseOutput(serializers.Serializer):
    case_id = serializers.UUIDField()
    category = serializers.CharField()
    confirmed_at = serializers.DateField()
    status = serializers.CharField(help_text=_("The case's status when the alert was raised."))


class AlertVelocityOutput(serializers.Serializer):
    _24h = serializers.IntegerField(
        source="24h", help_text=_("Other members that looked it up in 24 hours.")
    )
    threshold = serializers.IntegerField()


class AlertOutput(serializers.Serializer):
    id = serializers.UUIDField(help_text=_("Also the webhook-id of its deliveries."))
    type = serializers.ChoiceField(choices=AlertType.choices)
    created_at = serializers.DateTimeField()
    watch = AlertWatchOutput()
    case = AlertCaseOutput(allow_null=True)
    velocity = AlertVelocityOutput(allow_null=True)
    cursor = serializers.CharField(help_text=_("Pass as `after` to resume after this alert."))


class AlertListInput(serializers.Serializer):
    after = serializers.CharField(required=False, max_length=200)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ALERTS_PER_PAGE)


class AlertListApi(RegistryView):
    required_scopes = (Scope.LOOKUP,)

    @extend_schema(
        operation_id="alerts_list",
        description=_(
            "Your alerts after the cursor `after`, oldest first (at most `limit`, 100 by "
            "default). Keep `next_cursor` and pass it next time: nothing is skipped, even an "
            "alert that committed late."
        ),
        parameters=[
            OpenApiParameter("after", str, description=_("A cursor from an earlier answer.")),
            OpenApiParameter("limit", int, description=_("1 to 500; 100 by default.")),
        ],
        responses={
            200: inline_serializer(
                "AlertPage",
                {
                    "results": AlertOutput(many=True),
                    "next_cursor": serializers.CharField(allow_null=True),
                    "has_more": serializers.BooleanField(),
                },
            ),
            **problems(_400="validation_error: bad cursor", **COMMON),
        },
    )
    def get(self, request):
        data = AlertListInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        after = data.validated_data.get("after", "")
        limit = data.validated_data.get("limit", 100)
        alerts = alerts_of_member(actor=request.user, after=after, limit=limit)
        results = [{**alert_body(alert), "cursor": alert_cursor(alert)} for alert in alerts]
        return Response(
            {
                "results": results,
                "next_cursor": results[-1]["cursor"] if results else (after or None),
                "has_more": len(results) == limit,
            }
        )
