"""/api/v1/webhook-endpoints (scope `lookup`): where a member's alerts are pushed, signed as
Standard Webhooks. The secret is in the answer to the POST that creates the endpoint, and
never again. Another member's endpoint is 404 `not_found`."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from registry.api.base import RegistryView
from registry.api.problems import COMMON, problems
from registry.models import AlertType, Scope
from registry.selectors.watches import webhook_endpoints_of_member
from registry.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_test,
)


class EndpointInput(serializers.Serializer):
    url = serializers.CharField(
        max_length=2000, help_text=_("https URL that receives the deliveries.")
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(
            choices=AlertType.choices, error_messages={"invalid_choice": _("Unknown event type.")}
        ),
        min_length=1,
        max_length=len(AlertType.choices),
    )


class EndpointOutput(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    failing = serializers.SerializerMethodField(
        help_text=_("True when a delivery was given up after 24 hours of retries.")
    )
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)

    def get_failing(self, endpoint) -> bool:
        return endpoint.failing_since is not None


class EndpointCreatedOutput(EndpointOutput):
    secret = serializers.CharField(help_text=_("whsec_ + base64: shown this once."))


class EndpointCollectionApi(RegistryView):
    required_scopes = (Scope.LOOKUP,)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        description=_(
            "Add a webhook endpoint for the given alert types. The answer holds its signing "
            "secret, shown this once."
        ),
        request=EndpointInput,
        responses={
            201: EndpointCreatedOutput,
            **problems(_400="validation_error", _409="conflict: too many endpoints", **COMMON),
        },
    )
    def post(self, request):
        data = EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(actor=request.user, **data.validated_data)
        return Response(EndpointCreatedOutput(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="webhook_endpoints_list",
        description=_("Your webhook endpoints and their delivery health (never the secret)."),
        responses={200: EndpointOutput(many=True), **problems(**COMMON)},
    )
    def get(self, request):
        endpoints = webhook_endpoints_of_member(actor=request.user)
        return Response(EndpointOutput(endpoints, many=True).data)


class EndpointDetailApi(RegistryView):
    required_scopes = (Scope.LOOKUP,)

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        description=_("Delete one of your endpoints (its pending deliveries too)."),
        responses={204: None, **problems(_404="not_found", **COMMON)},
    )
    def delete(self, request, endpoint_id):
        webhook_endpoint_delete(actor=request.user, endpoint_id=endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointTestApi(RegistryView):
    required_scopes = (Scope.LOOKUP,)

    @extend_schema(
        operation_id="webhook_endpoints_test",
        description=_(
            "Send a webhook.test event to this endpoint (queued, delivered like alerts)."
        ),
        request=None,
        responses={
            202: inline_serializer("WebhookTestQueued", {"webhook_id": serializers.CharField()}),
            **problems(_404="not_found", **COMMON),
        },
    )
    def post(self, request, endpoint_id):
        delivery = webhook_endpoint_test(actor=request.user, endpoint_id=endpoint_id)
        return Response({"webhook_id": delivery.msg_id}, status=status.HTTP_202_ACCEPTED)
