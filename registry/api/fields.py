"""Reusable DRF fields for what members send: tokens and free text.

Both screen for raw personal identifiers (spec/identifiers.md section 4) BEFORE any other
check, so a phone number pasted into a token field is refused as `raw_pii_rejected` (not as a
badly formatted token), and the refused value is never echoed: the error detail is a fixed
sentence and DRF's error never carries the input.

    from registry.api.fields import FreeTextField, TokenField

    class Input(serializers.Serializer):
        token = TokenField()
        statement = FreeTextField(max_length=2000, required=False, allow_blank=True)

`RAW_PII_CODE` / `raw_pii_error()` are exported for code that screens values without a field
(the lookup fast path checks 1000 tokens with one regex per item instead of 1000 fields).
"""

from django.utils.translation import gettext_lazy as _
from registry_client.pii import looks_like_raw_identifier
from rest_framework import serializers

from registry.tokens import TOKEN_RE

RAW_PII_CODE = "raw_pii_rejected"
RAW_PII_DETAIL = _("This looks like a raw personal identifier; send tokens only.")
TOKEN_DETAIL = _("A token is 128 lower-case hexadecimal characters.")


def raw_pii_error() -> serializers.ValidationError:
    """The error for a value that looks like a raw identifier. Never includes the value."""
    return serializers.ValidationError(RAW_PII_DETAIL, code=RAW_PII_CODE)


def screen_token(value: object) -> str:
    """Validate one token: raw-identifier screen first, then the exact format.
    Raises ValidationError (code raw_pii_rejected or invalid_token)."""
    if not isinstance(value, str):
        raise serializers.ValidationError(TOKEN_DETAIL, code="invalid_token")
    if TOKEN_RE.match(value):
        return value  # 128 hex characters are never a raw identifier (pii masks hex blobs)
    if looks_like_raw_identifier(value):
        raise raw_pii_error()
    raise serializers.ValidationError(TOKEN_DETAIL, code="invalid_token")


class TokenField(serializers.Field):
    """An OPRF token: exactly 128 lower-case hex characters, never trimmed or case-folded
    (two spellings of one token would be two digests)."""

    default_error_messages = {"invalid_token": TOKEN_DETAIL}

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("OPRF token: 128 lower-case hex characters."))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return screen_token(data)

    def to_representation(self, value):
        return value


class FreeTextField(serializers.CharField):
    """A member's own words (case reference, consent reference, statement, reason).
    Refuses anything that looks like a raw phone, resident ID, card, IMEI or e-mail."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", True)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        # Screen before CharField's own checks (length, blank) so the code is raw_pii_rejected
        # whatever else is wrong with the value.
        if isinstance(data, str) and looks_like_raw_identifier(data):
            raise raw_pii_error()
        return super().run_validation(data)
