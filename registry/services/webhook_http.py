"""Sending one webhook request, guarded against server-side request forgery.

A member chooses the URL, so a delivery must not become the registry's way into its own
network: the address a request CONNECTS to must be global (not loopback, private, link-local
(cloud metadata lives there), shared, multicast, reserved or unspecified; IPv4-mapped IPv6 is
judged as its IPv4 address). The check is made on the addresses the connection itself
resolved, immediately before connecting to exactly that address, so a name that resolves to a
public address when the endpoint is created and to 127.0.0.1 when it is delivered to (DNS
rebinding) is refused. Hosts in REGISTRY_WEBHOOK_ALLOWED_HOSTS are exempt (tests, local
receivers), and only they may use plain http.

Redirects are not followed (http.client never follows them; a 3xx is a failed delivery), the
timeout is 10 seconds for connecting and for each read, and the response body is neither read
beyond a small limit nor stored.
"""

import http.client
import ipaddress
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from django.conf import settings

TIMEOUT_SECONDS = 10
MAX_RESPONSE_BYTES = 4096  # read (and dropped) so the connection closes cleanly


class BlockedAddress(Exception):
    """The URL's host resolves to an address deliveries may not go to."""


@dataclass(frozen=True)
class SendResult:
    status: int | None  # the HTTP status, None when no answer came
    error: str = ""  # the kind of failure: timeout, blocked_address, connection_error, ...

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def host_is_exempt(host: str) -> bool:
    allowed = {h.lower() for h in settings.REGISTRY_WEBHOOK_ALLOWED_HOSTS}
    return host.lower().strip("[]") in allowed


def address_is_forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def url_problem(url: str) -> str | None:
    """Why the URL cannot be an endpoint (a code), or None. Creation-time check; the
    connect-time check in `send` is the one that holds."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "invalid_url"
    host = parts.hostname or ""
    if not host or parts.username or parts.password or port == 0:
        return "invalid_url"
    exempt = host_is_exempt(host)
    if parts.scheme != "https" and not (exempt and parts.scheme == "http"):
        return "https_required"
    if exempt:
        return None
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return "forbidden_address"
    try:
        if address_is_forbidden(host):
            return "forbidden_address"
    except ValueError:
        pass  # a name: judged when connecting
    return None


def _guarded_create_connection(host: str, exempt: bool):
    def create_connection(address, timeout=TIMEOUT_SECONDS, source_address=None):
        _host, port = address
        last_error: OSError | None = None
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for *_rest, sockaddr in infos:
            if not exempt and address_is_forbidden(sockaddr[0]):
                raise BlockedAddress(host)
        for family, kind, proto, _name, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)  # exactly the address just checked
                return sock
            except OSError as error:
                last_error = error
                sock.close()
        raise last_error or OSError("no address")

    return create_connection


def send(url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    """POST `body` to `url` once. Never raises for what the receiver does."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    exempt = host_is_exempt(host)
    if parts.scheme != "https" and not (exempt and parts.scheme == "http"):
        return SendResult(None, "https_required")
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=TIMEOUT_SECONDS)
    connection._create_connection = _guarded_create_connection(host, exempt)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)  # dropped: response bodies are not stored
        return SendResult(response.status)
    except BlockedAddress:
        return SendResult(None, "blocked_address")
    except TimeoutError:
        return SendResult(None, "timeout")
    except ssl.SSLError:
        return SendResult(None, "tls_error")
    except (OSError, http.client.HTTPException):
        return SendResult(None, "connection_error")
    finally:
        connection.close()
