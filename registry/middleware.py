"""Request ids for logs, refusing oversized bodies before anything parses them, a CSP, and
the browser-only middleware that the bearer-token API skips."""

import uuid

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.utils.translation import gettext as _
from django_otp.middleware import OTPMiddleware

from registry.api.problems import problem, problem_json_response
from registry.logging import request_id_var

API_PREFIX = "/api/"


def client_address(request) -> str:
    """The client's address for lockouts (axes): behind a trusted proxy, the last address of
    X-Forwarded-For (nginx appends the peer it saw; anything before it is the client's own
    claim), else the peer's address."""
    peer = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and peer in settings.REGISTRY_TRUSTED_PROXIES:
        return forwarded.rsplit(",", 1)[-1].strip()[:45] or peer
    return peer


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
        token = request_id_var.set(request_id or uuid.uuid4().hex)
        try:
            response = self.get_response(request)
            response["X-Request-Id"] = request_id_var.get()
            return response
        finally:
            request_id_var.reset(token)


# An oversized body up to this size is read and thrown away before the 413 (see below).
DRAIN_FACTOR = 8
DRAIN_CHUNK = 64 * 1024


class BodySizeLimitMiddleware:
    """413 for a declared Content-Length above REGISTRY_MAX_BODY_BYTES. (Bodies without a
    length, i.e. chunked, are capped by Django's DATA_UPLOAD_MAX_MEMORY_SIZE when read, and
    by nginx's client_max_body_size in front.)

    The refused body is read and discarded first, up to DRAIN_FACTOR times the limit: a server
    that answers and closes with the upload still arriving makes the kernel reset the
    connection, and a client still sending then sees a broken pipe or a reset instead of the
    413 (nginx does the same with its lingering close). A body declared larger still is not
    read: that client may see a reset, and nginx refuses it first anyway."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.REGISTRY_MAX_BODY_BYTES:
            if length <= DRAIN_FACTOR * settings.REGISTRY_MAX_BODY_BYTES:
                _discard_body(request)
            body = problem(
                413,
                "payload_too_large",
                _("Request body too large"),
                _("The request body exceeds %(limit)d bytes.")
                % {"limit": settings.REGISTRY_MAX_BODY_BYTES},
            )
            return problem_json_response(body)
        return self.get_response(request)


def _discard_body(request) -> None:
    """Read the body (bounded by its Content-Length) without keeping it. Best effort: a client
    that stops sending or goes away still gets (or misses) its 413."""
    try:
        while request.read(DRAIN_CHUNK):
            pass
    except Exception:  # noqa: BLE001, S110 - any read error: answer without the rest
        pass


# Pages (the admin, the API docs) load scripts, styles, images and fonts from this origin only;
# inline styles are allowed because the admin's widgets set `style` attributes, inline
# scripts are not. JSON answers may load nothing at all.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


class ContentSecurityPolicyMiddleware:
    """A Content-Security-Policy on every response that does not set its own (Django 5.2 has
    none built in): a page the registry serves can run only the registry's own scripts."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            is_page = response.get("Content-Type", "").startswith("text/html")
            response["Content-Security-Policy"] = (
                getattr(settings, "REGISTRY_PAGE_CSP", PAGE_CSP) if is_page else API_CSP
            )
        return response


def browser_only(middleware: type) -> type:
    """The same middleware, skipped for requests under /api/.

    Sessions, the session user, OTP devices and messages serve the admin's pages. The API
    authenticates every call by its bearer key (DRF sets the user) and reads no cookie, so for
    it these only cost time: about a tenth of a single lookup's CPU time in the web worker.
    (CSRF, X-Frame-Options and axes stay as they are for every request: they cost next to
    nothing, and Django's deployment checks look for the first two by name.)"""

    class BrowserOnly(middleware):
        def __call__(self, request):
            if request.path_info.startswith(API_PREFIX):
                return self.get_response(request)
            return super().__call__(request)

    BrowserOnly.__name__ = BrowserOnly.__qualname__ = f"BrowserOnly{middleware.__name__}"
    return BrowserOnly


BrowserSessionMiddleware = browser_only(SessionMiddleware)
BrowserAuthenticationMiddleware = browser_only(AuthenticationMiddleware)
BrowserOTPMiddleware = browser_only(OTPMiddleware)
BrowserMessageMiddleware = browser_only(MessageMiddleware)
