"""The base class of every API view: authentication, scope, rate limit, headers."""

from rest_framework.views import APIView

from registry.api import throttling
from registry.models import Scope


class RegistryView(APIView):
    """Views set `required_scopes` (any of them grants access) and, when one call can count
    for a scope other than the first, override `rate_scope`."""

    required_scopes: tuple[Scope, ...] = ()

    def rate_scope(self, request) -> str:
        granted = [s for s in self.required_scopes if s in request.user.scopes]
        return granted[0] if granted else self.required_scopes[0]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authenticates and checks the scope
        request.rate_budget = throttling.consume(request.user, self.rate_scope(request))

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        budget = getattr(request, "rate_budget", None)
        if budget is not None:
            response["RateLimit-Limit"] = str(budget.limit)
            response["RateLimit-Remaining"] = str(budget.remaining)
            response["RateLimit-Reset"] = str(budget.reset)
        return response
