"""The base class of every API view: authentication, scope, rate limit, headers."""

from rest_framework.views import APIView

from registry.errors import RateLimited
from registry.models import Scope
from registry.services.quotas import quota_consume


class RegistryView(APIView):
    """Views set `required_scopes` (any of them grants access) and, when one call can count
    for a scope other than the first, override `rate_scope`.

    A call costs one unit of the member's limits, counted before the view runs. A view whose
    calls cost one unit per item (api.md "Conventions") sets `priced_per_item = True` and calls
    `self.charge(request, n)` once its input is valid, before doing the work: invalid input
    costs nothing, and a call that would pass a limit is refused whole."""

    required_scopes: tuple[Scope, ...] = ()
    priced_per_item = False

    def rate_scope(self, request) -> str:
        granted = [s for s in self.required_scopes if s in request.user.scopes]
        return granted[0] if granted else self.required_scopes[0]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authenticates and checks the scope
        if not self.priced_per_item:
            self.charge(request, 1)

    def charge(self, request, units: int) -> None:
        """Reserve `units` of the member's limits for this call (429 when they do not fit)."""
        try:
            request.rate_budget = quota_consume(
                actor=request.user, scope=self.rate_scope(request), units=units
            )
        except RateLimited as exc:
            request.rate_budget = getattr(exc, "budget", None)
            raise

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        budget = getattr(request, "rate_budget", None)
        if budget is not None:
            response["RateLimit-Limit"] = str(budget.limit)
            response["RateLimit-Remaining"] = str(budget.remaining)
            response["RateLimit-Reset"] = str(budget.reset)
        return response
