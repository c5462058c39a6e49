"""Bearer API keys and scopes."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from registry.actors import Actor
from registry.services.api_keys import api_key_authenticate


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _sep, raw_key = header.partition(" ")
        if scheme.lower() != "bearer" or not raw_key.strip():
            raise exceptions.AuthenticationFailed(_("Use 'Authorization: Bearer <api key>'."))
        key = api_key_authenticate(raw_key.strip())
        if key is None:
            raise exceptions.AuthenticationFailed(_("Invalid, revoked or suspended API key."))
        return Actor.for_api_key(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="registry"'


class HasScope(permissions.BasePermission):
    """The view names `required_scopes`: the caller needs at least one of them."""

    message = _("This API key lacks the scope this endpoint needs.")

    def has_permission(self, request, view) -> bool:
        actor = request.user
        if not isinstance(actor, Actor):
            raise exceptions.NotAuthenticated(_("Authentication required: send a Bearer API key."))
        required = getattr(view, "required_scopes", ())
        return bool(actor.scopes.intersection(required))


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular that every API view takes the bearer key (the schema's
    `bearer` security scheme)."""

    target_class = "registry.api.auth.ApiKeyAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "rk_<prefix>_<secret>"}

    def get_security_requirement(self, auto_schema):
        return None  # SPECTACULAR_SETTINGS["SECURITY"] already names it for every operation
