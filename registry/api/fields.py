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

from registry.models import IdentifierKind
from registry.tokens import TOKEN_RE

KINDS = frozenset(IdentifierKind.values)  # TextChoices.values builds a new list per call
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


class ChoiceField(serializers.ChoiceField):
    """DRF's ChoiceField, whose error names the allowed values instead of repeating the one
    that was sent (DRF's says '"<value>" is not a valid choice.')."""

    default_error_messages = {"invalid_choice": _("Not one of the allowed values: {allowed}.")}

    def to_internal_value(self, data):
        if data == "" and self.allow_blank:
            return ""
        try:
            return self.choice_strings_to_values[str(data)]
        except KeyError:
            allowed = ", ".join(str(key) for key in self.choices)
            raise serializers.ValidationError(
                self.error_messages["invalid_choice"].format(allowed=allowed),
                code="invalid_choice",
            ) from None


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


class IdentifierListField(serializers.Field):
    """A list of `{"kind": ..., "token": ...}` objects, checked with a plain loop (no nested
    serializer per item: 1000 identifiers validate in about a millisecond). Errors point at
    the item: `/identifiers/3/token`. Returns a list of (kind, token) tuples.

    `max_items` above which the whole list is refused with `too_large_code` (lookups:
    batch_too_large), `unique` refuses a token given twice (cases)."""

    default_error_messages = {
        "not_a_list": _("Expected a list of objects with kind and token."),
        "empty": _("At least one identifier is required."),
        "too_many": _("At most {max_items} identifiers."),
    }

    def __init__(
        self,
        *,
        max_items: int,
        too_large_code: str = "too_many_identifiers",
        unique: bool = False,
        **kwargs,
    ):
        self.max_items = max_items
        self.too_large_code = too_large_code
        self.unique = unique
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("not_a_list")
        if not data:
            self.fail("empty")
        if len(data) > self.max_items:
            raise serializers.ValidationError(
                self.error_messages["too_many"].format(max_items=self.max_items),
                code=self.too_large_code,
            )
        items, errors, seen = [], {}, {}
        for index, item in enumerate(data):
            item_errors = _identifier_errors(item)
            if item_errors:
                errors[index] = item_errors
                continue
            kind, token = item["kind"], item["token"]
            if self.unique and token in seen:
                errors[index] = {
                    "token": [
                        serializers.ErrorDetail(
                            _("The same token appears twice in this case (first at %(first)d).")
                            % {"first": seen[token]},
                            code="duplicate_token",
                        )
                    ]
                }
                continue
            seen[token] = index
            items.append((kind, token))
        if errors:
            raise serializers.ValidationError(errors)
        return items

    def to_representation(self, value):
        return [{"kind": kind, "token": token} for kind, token in value]


def _identifier_errors(item) -> dict | None:
    if not isinstance(item, dict):
        return {
            "non_field_errors": [
                serializers.ErrorDetail(
                    _("Expected an object with kind and token."), code="invalid"
                )
            ]
        }
    errors = {}
    # The token is screened before the kind so that a raw identifier is always reported as
    # such, whatever else is wrong with the item.
    if "token" not in item:
        errors["token"] = [serializers.ErrorDetail(_("This field is required."), code="required")]
    else:
        try:
            screen_token(item["token"])
        except serializers.ValidationError as exc:
            errors["token"] = exc.detail
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        errors["kind"] = [
            serializers.ErrorDetail(_("Unknown identifier kind."), code="unknown_kind")
        ]
    return errors or None
