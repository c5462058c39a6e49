from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from registry.api.base import RegistryView
from registry.services.oprf import MAX_ELEMENTS, oprf_evaluate


class EvaluateInput(serializers.Serializer):
    # Lengths and encodings are checked per element by the service, to point at the bad one.
    blinded_elements = serializers.ListField(
        child=serializers.CharField(max_length=200, trim_whitespace=False),
        allow_empty=False,
        max_length=MAX_ELEMENTS * 10,  # the service answers batch_too_large above 1000
    )


class EvaluateOutput(serializers.Serializer):
    key_id = serializers.CharField()
    evaluated_elements = serializers.ListField(child=serializers.CharField())


PROBLEM = OpenApiResponse(description=_("Problem details (RFC 9457)"))


class OprfEvaluateApi(RegistryView):
    required_scopes = ("lookup", "submit", "dispute")

    @extend_schema(request=EvaluateInput, operation_id="oprf_evaluate",
                   responses={200: EvaluateOutput, 400: PROBLEM, 401: PROBLEM, 403: PROBLEM,
                              429: PROBLEM})
    def post(self, request):
        data = EvaluateInput(data=request.data)
        data.is_valid(raise_exception=True)
        key_id, evaluated = oprf_evaluate(
            actor=request.user, blinded_elements=data.validated_data["blinded_elements"]
        )
        return Response({"key_id": key_id, "evaluated_elements": evaluated})
