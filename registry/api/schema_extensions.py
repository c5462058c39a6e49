"""OpenAPI descriptions of the registry's custom serializer fields (registry/api/fields.py,
the attestation in cases.py), which drf-spectacular cannot infer: without them the schema
says "string" where the API expects a list of identifiers, and clients (and schemathesis)
generate requests the API can only refuse. Imported by registry/api/urls.py."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension

from registry.models import IdentifierKind

TOKEN_SCHEMA = {
    "type": "string",
    "pattern": "^[0-9a-f]{128}$",
    "description": _("OPRF token: 128 lower-case hex characters."),
}


class TokenFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "registry.api.fields.TokenField"

    def map_serializer_field(self, auto_schema, direction):
        return dict(TOKEN_SCHEMA)


class IdentifierListFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "registry.api.fields.IdentifierListField"

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": self.target.max_items,
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": list(IdentifierKind.values)},
                    "token": dict(TOKEN_SCHEMA),
                },
                "required": ["kind", "token"],
            },
        }


class AttestationFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "registry.api.cases.AttestationField"

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "boolean",
            "enum": [True],
            "description": _("Must be true: the case meets the standard of proof."),
        }
