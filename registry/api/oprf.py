from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from registry.api.base import RegistryView
from registry.api.problems import COMMON, problems
from registry.models import LimitScope, Scope
from registry.services.oprf import MAX_ELEMENTS, key_set, oprf_evaluate


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
    evaluator = serializers.CharField()
    evaluated_elements = serializers.ListField(child=serializers.CharField())
    proof = serializers.CharField(help_text="RFC 9497 batched DLEQ proof, c || s (128 hex)")


class EvaluatorOutput(serializers.Serializer):
    id = serializers.CharField()
    index = serializers.IntegerField()
    url = serializers.CharField()
    public_key = serializers.CharField()


class KeysOutput(serializers.Serializer):
    suite = serializers.CharField()
    mode = serializers.CharField()
    key_id = serializers.CharField()
    public_key = serializers.CharField()
    threshold = serializers.IntegerField()
    evaluators = EvaluatorOutput(many=True)


class OprfEvaluateApi(RegistryView):
    required_scopes = (Scope.LOOKUP, Scope.SUBMIT, Scope.DISPUTE)
    priced_per_item = True  # one unit per element

    def rate_scope(self, request) -> str:
        return LimitScope.EVALUATE  # one budget per member, whichever key (scope) calls

    @extend_schema(
        request=EvaluateInput,
        operation_id="oprf_evaluate",
        responses={200: EvaluateOutput, **problems(_400="validation_error", **COMMON)},
    )
    def post(self, request):
        data = EvaluateInput(data=request.data)
        data.is_valid(raise_exception=True)
        elements = data.validated_data["blinded_elements"]
        if len(elements) <= MAX_ELEMENTS:  # a larger batch is refused by the service, unpriced
            self.charge(request, len(elements))
        answer = oprf_evaluate(actor=request.user, blinded_elements=elements)
        return Response(answer)


class OprfKeysApi(RegistryView):
    """The published key: any authenticated key may read it, and clients cache it."""

    required_scopes = (
        Scope.LOOKUP,
        Scope.SUBMIT,
        Scope.DISPUTE,
        Scope.COMPLIANCE,
        Scope.COMPLIANCE_READ,
    )

    @extend_schema(operation_id="oprf_keys", responses={200: KeysOutput, **problems(**COMMON)})
    def get(self, request):
        document = key_set().as_json()
        for evaluator in document["evaluators"]:
            if not evaluator["url"]:  # the single evaluator is this server itself
                evaluator["url"] = request.build_absolute_uri("/")[:-1]
        response = Response(document)
        response["Cache-Control"] = "private, max-age=300"
        return response
