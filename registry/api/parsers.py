"""The API's one parser: strict JSON (RFC 8259), UTF-8 only.

Refused with 400 `malformed_json` (spec/api.md, Conventions: input limits), before any view
sees the data: invalid UTF-8 (whatever charset the Content-Type claims), JSON nested deeper
than 32 levels (Python's own parser would otherwise recurse until RecursionError), lone UTF-16
surrogates written as escapes ("\\ud800": they decode to strings that cannot be encoded again,
so the database driver, the log formatter or the renderer would fail later), NaN and
Infinity. The error never repeats any of the body.
"""

import json
import re

from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32
# Surrogates can only come from \u escapes (strict UTF-8 decoding refuses encoded ones), so a
# body without such an escape needs no string walk.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read()  # its size is capped by BodySizeLimitMiddleware
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(_("The request body is not valid UTF-8.")) from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise ParseError(
                _("The request body is not valid JSON (line %(line)d, column %(column)d).")
                % {"line": exc.lineno, "column": exc.colno}
            ) from None
        except RecursionError:
            raise ParseError(_nesting_message()) from None
        except ValueError:
            raise ParseError(_("The request body is not valid JSON.")) from None
        _check_nesting_and_strings(data, surrogates_possible=bool(_SURROGATE_ESCAPE.search(body)))
        return data


def _refuse_constant(name: str):
    raise ValueError("NaN and Infinity are not JSON")


def _check_nesting_and_strings(data, *, surrogates_possible: bool) -> None:
    """One iterative walk: depth of arrays and objects (the outermost is level 1) and, when
    the body had a surrogate escape, every key and string."""
    stack = [(data, 1)] if isinstance(data, dict | list) else []
    if not stack and surrogates_possible and isinstance(data, str):
        _check_string(data)
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(_nesting_message())
        if isinstance(node, dict):
            if surrogates_possible:
                for key in node:
                    _check_string(key)
            children = node.values()
        else:
            children = node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif surrogates_possible and isinstance(child, str):
                _check_string(child)


def _nesting_message() -> str:
    return _("The request body is nested deeper than %(depth)d levels.") % {"depth": MAX_DEPTH}


def _check_string(value: str) -> None:
    if _SURROGATE.search(value):
        raise ParseError(_("The request body contains a lone UTF-16 surrogate."))
