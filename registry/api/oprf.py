from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from registry.api.base import RegistryView
from registry.api.problems import COMMON, problems
from registry.models import Scope
from registry.services.oprf import MAX_ELEMENTS, oprf_evaluate


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_ELEMENTS,
        "items": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
    }
)
class BlindedElementListField(serializers.Field):
    """The list itself only: each element's type, length, hex and point encoding are checked
    by the service, which points at the bad one. (A DRF CharField per element cost a quarter
    of the evaluation time of a 1000-element call.)"""

    # DRF's own ListField messages (and their translations): the answers are unchanged.
    default_error_messages = {
        code: serializers.ListField.default_error_messages[code]
        for code in ("not_a_list", "empty", "max_length")
    }

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if not data:
            self.fail("empty")
        if len(data) > MAX_ELEMENTS * 10:  # the service answers batch_too_large above 1000
            self.fail("max_length", max_length=MAX_ELEMENTS * 10)
        return data

    def to_representation(self, value):
        return value


class EvaluateInput(serializers.Serializer):
    blinded_elements = BlindedElementListField()


class EvaluateOutput(serializers.Serializer):
    key_id = serializers.CharField()
    evaluated_elements = serializers.ListField(child=serializers.CharField())


class OprfEvaluateApi(RegistryView):
    required_scopes = (Scope.LOOKUP, Scope.SUBMIT, Scope.DISPUTE)

    @extend_schema(
        request=EvaluateInput,
        operation_id="oprf_evaluate",
        responses={200: EvaluateOutput, **problems(_400="validation_error", **COMMON)},
    )
    def post(self, request):
        data = EvaluateInput(data=request.data)
        data.is_valid(raise_exception=True)
        key_id, evaluated = oprf_evaluate(
            actor=request.user, blinded_elements=data.validated_data["blinded_elements"]
        )
        return Response({"key_id": key_id, "evaluated_elements": evaluated})
