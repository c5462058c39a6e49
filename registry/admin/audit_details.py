"""An audit event's details as officers read them: each key in words and each value that is a
code (a status, a kind, a category, a scope, ...) in words too, as a key/value list on the
event's page and one line in the trail. The JSON itself is unchanged (the CSV export and
`verify_audit` keep it as stored); a key or value not known here shows as it is."""

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from registry.admin.common import action_label, category_label, scope_labels
from registry.models import (
    CaseStatus,
    Dispute,
    DisputeStatus,
    IdentifierKind,
    LimitScope,
    Member,
    Purpose,
    WatchPurpose,
)

DETAIL_KEYS = {
    "action": _("Action"),
    "alerts": _("Alerts"),
    "attempts": _("Attempts"),
    "by": _("By"),
    "case_id": _("Case"),
    "case_ids": _("Cases"),
    "case_status": _("Case status"),
    "cases": _("Cases"),
    "cases_redated": _("Cases re-dated"),
    "category": _("Category"),
    "changed": _("Changed fields"),
    "checked": _("Events checked"),
    "closed_before": _("Closed before"),
    "confirmed_at": _("Confirmed on"),
    "count": _("Count"),
    "created_before": _("Created before"),
    "day": _("Day"),
    "deleted": _("Deleted"),
    "dispute_id": _("Dispute"),
    "disputes_per_day": _("Disputes per day"),
    "due_at": _("Due at"),
    "elements": _("Elements"),
    "error": _("Error"),
    "evaluator": _("Evaluator"),
    "events": _("Events"),
    "expired_before": _("Expired before"),
    "expires_at": _("Expires on"),
    "expires_on": _("Expires on"),
    "expires_on_or_before": _("Expiring on or before"),
    "filters": _("Filters"),
    "fingerprint": _("Fingerprint"),
    "first_bad_event_id": _("First bad event"),
    "first_id": _("First row"),
    "from_days": _("From (days)"),
    "hash": _("Hash"),
    "identifier_kind": _("Identifier kind"),
    "identifier_kinds": _("Identifier kinds"),
    "identifiers": _("Identifiers"),
    "identifiers_purged": _("Identifiers purged"),
    "key_id": _("Key id"),
    "kind": _("Identifier kind"),
    "last_id": _("Last row"),
    "limit": _("Limit"),
    "lookups": _("Lookups"),
    "median": _("Median"),
    "member": _("Member"),
    "member_id": _("Member (internal id)"),
    "merged": _("Merged"),
    "messages": _("Messages"),
    "msg_id": _("Message id"),
    "name": _("Name"),
    "officer": _("Officer"),
    "ok": _("Intact"),
    "older_than": _("Older than"),
    "outcome": _("Outcome"),
    "per_day": _("Units per day"),
    "per_minute": _("Units per minute"),
    "position": _("Member's position"),
    "purpose": _("Purpose"),
    "rationale_length": _("Rationale length (characters)"),
    "reason": _("Reason"),
    "reason_length": _("Reason length (characters)"),
    "reference_length": _("Reference length (characters)"),
    "rows": _("Rows"),
    "scope": _("Scope"),
    "scopes": _("Scopes"),
    "searched": _("Searched"),
    "selected": _("Selected"),
    "seq": _("Sealed events"),
    "signal": _("Signal"),
    "statement_length": _("Statement length (characters)"),
    "status": _("Status"),
    "subject_statement": _("Subject's statement"),
    "subject_statement_attached": _("Subject's statement attached"),
    "table": _("Table"),
    "tables": _("Tables"),
    "threshold": _("Threshold"),
    "to_days": _("To (days)"),
    "to_version": _("To pepper version"),
    "undecided_dispute_ids": _("Undecided disputes"),
    "unsealed": _("Not yet sealed"),
    "value": _("Value"),
    "velocity_alert_threshold": _("Velocity alert threshold"),
    "watch_ids": _("Watches"),
    "watches": _("Watches"),
    "window": _("Window"),
}

WINDOW_WORDS = {"minute": _("minute"), "day": _("day")}


def _choice(choices, value):
    try:
        return str(choices(value).label)
    except ValueError:
        return None


def _status(value) -> str | None:
    for choices in (CaseStatus, DisputeStatus, Member.Status):
        if (label := _choice(choices, value)) is not None:
            return label
    return None


def _signal(value) -> str | None:
    from registry.selectors.usage import SIGNAL_LABELS

    label = SIGNAL_LABELS.get(value)
    return str(label) if label else None


# Keys whose values are codes, with the words for them (None: no word known, keep the code).
VALUE_WORDS = {
    "action": lambda v: action_label(v),
    "kind": lambda v: _choice(IdentifierKind, v),
    "identifier_kind": lambda v: _choice(IdentifierKind, v),
    "status": _status,
    "case_status": _status,
    "outcome": lambda v: _choice(DisputeStatus, v),
    "position": lambda v: _choice(Dispute.Position, v),
    "reason": lambda v: _choice(Dispute.Reason, v),
    "purpose": lambda v: _choice(Purpose, v) or _choice(WatchPurpose, v),
    "category": lambda v: category_label(v),
    "scope": lambda v: _choice(LimitScope, v) or scope_labels([v]),
    "signal": _signal,
    "window": lambda v: str(WINDOW_WORDS[v]) if v in WINDOW_WORDS else None,
}
LIST_WORDS = {"identifier_kinds": "kind", "scopes": "scope", "changed": None}


def key_label(key: str) -> str:
    label = DETAIL_KEYS.get(key)
    return str(label) if label is not None else key


def value_text(key: str, value) -> str:
    """One value in words: a code known for its key, a yes or no, a list, a nested mapping
    (an export's filters) as "key: value" pairs; anything else as it is."""
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, dict):
        return "; ".join(f"{key_label(k)}: {value_text(k, v)}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        item_key = LIST_WORDS.get(key, key)
        return ", ".join(value_text(item_key, item) if item_key else str(item) for item in value)
    words = VALUE_WORDS.get(key)
    if words is not None and isinstance(value, str):
        return words(value) or value
    if key.endswith("_at") and isinstance(value, str):
        return _local_time(value)
    return str(value)


def _local_time(value: str) -> str:
    """A stored ISO time (UTC) as the screen shows times: local, to the second."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if timezone.is_naive(moment):
        return value
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def details_rows(details) -> list[tuple[str, str]]:
    if not isinstance(details, dict):
        return [("", str(details))]
    return [(key_label(k), value_text(k, v)) for k, v in sorted(details.items())]


def details_list(details) -> str:
    """The event's page: a key/value list."""
    rows = details_rows(details)
    if not rows:
        return "—"
    return format_html(
        '<dl class="registry-details">{}</dl>',
        format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows),
    )


def details_line(details, width: int) -> str:
    """The trail's column: "key: value; ..." on one line of at most `width` characters."""
    text = "; ".join(f"{k}: {v}" for k, v in details_rows(details))
    return text if len(text) <= width else text[: width - 1] + "…"
