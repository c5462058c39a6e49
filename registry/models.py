"""The registry's data and its constraints. Logic lives in services/ (writes) and selectors/
(reads); this module only says what is stored and what the database must refuse.

Nothing here holds a raw identifier or a token: identifiers are stored as
`digest = HMAC-SHA256(pepper, token)` plus a short `fingerprint` for people to read.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from registry.ids import uuid7


class Scope(models.TextChoices):
    LOOKUP = "lookup", _("Lookup")
    SUBMIT = "submit", _("Submit cases")
    DISPUTE = "dispute", _("File disputes")
    COMPLIANCE = "compliance", _("Compliance")
    COMPLIANCE_READ = "compliance_read", _("Compliance, read only")


MEMBER_SCOPES = (Scope.LOOKUP, Scope.SUBMIT, Scope.DISPUTE)
# What an officer-held key may carry, by the owner's group (registry/services/members.py):
# officers decide; auditors only read. Checked when issued and at every use.
OFFICER_SCOPES = (Scope.COMPLIANCE, Scope.COMPLIANCE_READ)
AUDITOR_SCOPES = (Scope.COMPLIANCE_READ,)


class IdentifierKind(models.TextChoices):
    PHONE = "phone", _("Mobile phone number")
    CN_RESIDENT_ID = "cn_resident_id", _("Chinese resident ID number")
    BANK_CARD = "bank_card", _("Bank card number")
    IMEI = "imei", _("Device IMEI")
    EMAIL = "email", _("E-mail address")


class Member(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    code = models.CharField(
        _("code"),
        max_length=32,
        unique=True,
        validators=[RegexValidator(r"^[A-Z0-9_]{2,32}$", _("2–32 of A–Z, 0–9 and _."))],
    )
    name = models.CharField(_("name"), max_length=200)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE
    )
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Empty: REGISTRY_DISPUTE_QUOTA_PER_DAY. Counted from the disputes themselves (not the
    # cache-based rate limiter, which fails open) over the last 24 hours.
    dispute_quota_per_day = models.PositiveIntegerField(
        _("disputes per day"),
        null=True,
        blank=True,
        help_text=_("Disputes this member may file in any 24 hours; empty for the default."),
    )
    # Why the member is suspended, for the officers' page (empty while active). Kept here,
    # not in the append-only audit trail (which gets its length only), so that it can be
    # corrected and is cleared on reactivation; screened against raw identifiers.
    suspension_reason = models.TextField(_("reason for the suspension"), blank=True)
    # Empty: REGISTRY_VELOCITY_ALERT_THRESHOLD (3). A watched identifier looked up by this
    # many other members within 24 hours raises a velocity.exceeded alert.
    velocity_alert_threshold = models.PositiveSmallIntegerField(
        _("velocity alert threshold"),
        null=True,
        blank=True,
        help_text=_(
            "Other members looking a watched identifier up within 24 hours that raise an "
            "alert; empty for the default."
        ),
    )

    class Meta:
        verbose_name = _("member institution")
        verbose_name_plural = _("member institutions")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(code__regex=r"^[A-Z0-9_]{2,32}$"), name="member_code_format"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class LimitScope(models.TextChoices):
    """What a member's limits count (api.md "Conventions"): units of work, per member. Evaluate
    has its own budget whichever of the member's keys calls (any member scope may evaluate)."""

    EVALUATE = "evaluate", _("OPRF evaluate (one unit per element)")
    LOOKUP = "lookup", _("Lookups (one unit per identifier)")
    SUBMIT = "submit", _("Submit cases (one unit per call)")
    DISPUTE = "dispute", _("Disputes (one unit per call)")
    WATCH = "watch", _("Watches (one unit per identifier)")


class MemberLimit(models.Model):
    """Per-member, per-scope rate limit and daily quota in units, set by officers. Absent =
    defaults."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="limits")
    scope = models.CharField(_("scope"), max_length=16, choices=LimitScope.choices)
    per_minute = models.PositiveIntegerField(_("units per minute"))
    per_day = models.PositiveIntegerField(_("units per day"))

    class Meta:
        verbose_name = _("rate limit")
        verbose_name_plural = _("rate limits")
        constraints = [
            models.UniqueConstraint(fields=["member", "scope"], name="one_limit_per_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.scope} {self.per_minute}/min {self.per_day}/day"


class QuotaCounter(models.Model):
    """Units a member used in its current minute and day window of one scope, counted HERE
    only while the shared limiter (Redis) is unreachable (services/quotas.py). One row per
    (member, scope, window kind), reset in place when a new window starts; `updated_at` tells
    the dashboard when the fallback was last used."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=16, choices=LimitScope.choices)
    window = models.CharField(max_length=1)  # "m" (minute) or "d" (day)
    start = models.BigIntegerField()  # the window's number: Unix time // its length
    used = models.PositiveIntegerField()
    updated_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["member", "scope", "window"], name="one_quota_counter_per_window"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.scope}:{self.window}{self.start} {self.used}"


class MemberDailyUsage(models.Model):
    """One member's work on one (local) day, rolled up from the lookups, the evaluate audit
    events and the disputes by services/usage.py: the history the usage signals compare a
    day against (the member's own 30-day median)."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField(_("day"))
    elements_evaluated = models.PositiveBigIntegerField(_("elements evaluated"), default=0)
    identifiers_looked_up = models.PositiveBigIntegerField(_("identifiers looked up"), default=0)
    distinct_identifiers = models.PositiveBigIntegerField(
        _("distinct identifiers looked up"), default=0
    )
    identifiers_matched = models.PositiveBigIntegerField(_("identifiers matched"), default=0)
    disputes_filed = models.PositiveIntegerField(_("disputes filed"), default=0)
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("daily usage")
        verbose_name_plural = _("daily usage")
        constraints = [
            models.UniqueConstraint(fields=["member", "day"], name="one_usage_row_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.day}"


class ApiKey(models.Model):
    """A bearer key `rk_<prefix>_<secret>`. Only SHA-256 of the secret is stored: the secret
    has 256 bits of entropy, so a slow hash would add latency and no security."""

    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    secret_hash = models.BinaryField(max_length=32)
    name = models.CharField(_("label"), max_length=100, blank=True)
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    officer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
    )
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    # Officers' keys expire (REGISTRY_COMPLIANCE_KEY_DAYS); members' keys do not.
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        constraints = [
            models.CheckConstraint(
                condition=(Q(member__isnull=False) & Q(officer__isnull=True))
                | (Q(member__isnull=True) & Q(officer__isnull=False)),
                name="api_key_has_one_owner",
            ),
            models.CheckConstraint(
                condition=Q(officer__isnull=True) | Q(expires_at__isnull=False),
                name="api_key_officer_key_expires",
            ),
        ]

    def __str__(self) -> str:
        return f"rk_{self.prefix}_…"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Category(models.Model):
    """A fraud category with its retention period (default 5 years, set by officers)."""

    code = models.CharField(_("code"), max_length=40, primary_key=True)
    name = models.CharField(_("name"), max_length=100)
    retention_days = models.PositiveIntegerField(_("retention (days)"), default=1826)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["code"]
        constraints = [
            # Chinese credit rules keep negative records at most 5 years.
            models.CheckConstraint(
                condition=Q(retention_days__gte=1) & Q(retention_days__lte=1827),
                name="retention_at_most_five_years",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class CaseStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    DISPUTED = "disputed", _("Disputed")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    REMOVED = "removed", _("Removed")
    EXPIRED = "expired", _("Expired")


LIVE_CASE_STATUSES = (CaseStatus.ACTIVE, CaseStatus.DISPUTED)


class Case(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No single-column indexes on the two foreign keys: case_member_newest and
    # one_live_case_per_reference lead with the member, and case_category is a plain index
    # (db_index=True would add a LIKE-pattern one too). Every submission writes each index.
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="cases", db_index=False
    )
    reference = models.CharField(_("reference"), max_length=100)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="cases", db_index=False
    )
    status = models.CharField(
        _("status"), max_length=16, choices=CaseStatus.choices, default=CaseStatus.ACTIVE
    )
    confirmed_at = models.DateField(_("confirmed on"))
    expires_at = models.DateField(_("expires on"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    status_changed_at = models.DateTimeField(_("status changed at"), auto_now_add=True)
    subject_statement = models.TextField(_("subject's statement"), blank=True)
    # When the closed_text_scrub job blanked the reference and the statement of this closed
    # case (services/jobs/scrub.py); null while they are kept.
    text_scrubbed_at = models.DateTimeField(_("text scrubbed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["member", "-created_at"], name="case_member_newest"),
            models.Index(fields=["category"], name="case_category"),
            # Member quality's withdrawn share (selectors/quality.py): small (withdrawn cases
            # only), and written only on withdrawal, never on submission.
            models.Index(
                fields=["member", "created_at"],
                name="case_member_withdrawn",
                condition=Q(status="withdrawn"),
            ),
            models.Index(
                fields=["expires_at"],
                name="case_live_by_expiry",
                condition=Q(status__in=["active", "disputed"]),
            ),
            # The regulator's monthly report (selectors/report.py): cases submitted in a
            # month, cases closed in a month and live cases, each counted per category from
            # an index alone. Creation times only grow, so case_created is appended to at
            # its right edge; case_closed is written when a case closes, not when it is
            # submitted.
            models.Index(fields=["created_at", "category"], name="case_created"),
            models.Index(
                fields=["status_changed_at", "category", "status"],
                name="case_closed",
                condition=Q(status__in=["withdrawn", "removed", "expired"]),
            ),
            models.Index(
                fields=["category"],
                name="case_live_category",
                condition=Q(status__in=["active", "disputed"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "reference"],
                condition=Q(status__in=["active", "disputed"]),
                name="one_live_case_per_reference",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("confirmed_at")), name="case_expires_after"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.reference}"


class CaseIdentifier(models.Model):
    """One identifier of a case, as a peppered digest. Deleted (not flagged) when the case
    leaves the registry: withdrawn, removed or expired."""

    # identifier_once leads with the case: it serves reads by case (and the cascade), so the
    # foreign key needs no index of its own, one random-order insert fewer per identifier.
    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="identifiers", db_index=False
    )
    kind = models.CharField(max_length=16, choices=IdentifierKind.choices)
    digest = models.BinaryField(max_length=32)
    pepper_version = models.PositiveSmallIntegerField(default=1)
    fingerprint = models.CharField(max_length=16)

    class Meta:
        verbose_name = _("case identifier")
        verbose_name_plural = _("case identifiers")
        indexes = [
            models.Index(fields=["digest", "kind"], name="case_identifier_digest"),
            models.Index(fields=["pepper_version"], name="case_identifier_pepper"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["case", "kind", "digest"], name="identifier_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.fingerprint}"


class Purpose(models.TextChoices):
    LOAN_APPLICATION = "loan_application", _("Loan application")
    ACCOUNT_OPENING = "account_opening", _("Account opening")
    CREDIT_REVIEW = "credit_review", _("Credit review")
    FRAUD_INVESTIGATION = "fraud_investigation", _("Fraud investigation")


# Partitioned history (migration 0014, registry/services/partitions.py): Lookup,
# LookupLogEntry, AuditEvent and AuditSeal live in monthly RANGE partitions of their time
# column (AuditSeal: event_created_at). PostgreSQL requires a partitioned table's primary key
# to include the partition key, so in the database it is (id, created_at) (AuditSeal: (seq,
# event_created_at)). Django still sees `id` (`seq`) alone as the primary key: ids are unique
# on their own (a UUIDv7, a sequence, the chain's position), and Django's admin, which shows
# every one of these models, does not support a CompositePrimaryKey.


class Lookup(models.Model):
    """One lookup call: who asked, when, why, how many identifiers and matches. Partitioned by
    month of created_at (see above)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No foreign-key constraints in the database on the partitioned history (here, the log's
    # member, the audit trail's): creating, detaching or dropping a partition that carries one
    # takes an ACCESS EXCLUSIVE lock on the referenced table (members, keys), which every API
    # request reads, so the monthly drop would stall or deadlock the whole API. Django still
    # enforces PROTECT and SET_NULL; members are never deleted once they have looked up.
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="lookups", db_constraint=False
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    purpose = models.CharField(_("purpose"), max_length=32, choices=Purpose.choices)
    consent_reference = models.CharField(_("consent reference"), max_length=100, blank=True)
    identifier_count = models.PositiveIntegerField()
    match_count = models.PositiveIntegerField()
    created_at = models.DateTimeField(_("looked up at"))

    class Meta:
        verbose_name = _("lookup")
        verbose_name_plural = _("lookups")
        # Every read by time (the dashboard, the regulator's monthly report by purpose)
        # counts from this index alone: the columns those reads add up ride along.
        indexes = [
            models.Index(
                fields=["created_at"],
                name="lookup_created",
                include=["purpose", "identifier_count", "match_count"],
            ),
        ]

    def __str__(self) -> str:
        return f"lookup {self.pk}"


class LookupLogEntry(models.Model):
    """One identifier of one lookup (for subject access and the regulator). Velocity does not
    scan this table; it reads the Sighting rollup."""

    # No foreign-key constraint in the database: a foreign key must reference a unique key, and
    # every unique key of the partitioned Lookup table includes created_at, which the log does
    # not repeat. The log's row and its lookup are written by one statement with the same time,
    # so they sit in the same month and their partitions are dropped together.
    lookup = models.ForeignKey(
        Lookup, on_delete=models.CASCADE, related_name="entries", db_constraint=False
    )
    # No index of its own (nor on Sighting.member, nor AuditEvent.member beyond
    # audit_member_newest): every lookup writes these rows, and each index is one more write
    # per row; the only reader by member alone would be deleting a member, which never happens
    # to one that has looked anything up (Lookup.member protects it).
    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    kind = models.CharField(max_length=16, choices=IdentifierKind.choices)
    digest = models.BinaryField(max_length=32)
    pepper_version = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["digest"], name="lookup_log_digest"),
            models.Index(fields=["created_at"], name="lookup_log_created"),
        ]

    def __str__(self) -> str:
        return f"lookup {self.lookup_id} #{self.pk}"


class Sighting(models.Model):
    """Rollup for velocity: when each member last looked up each identifier.

    "How many other members looked this identifier up in the last N" equals "how many other
    members' last sighting of it is within N", so one row per (identifier, member) answers all
    five windows, whatever the size of the lookup log, and a member's repeat lookups count once.
    """

    kind = models.CharField(max_length=16, choices=IdentifierKind.choices)
    digest = models.BinaryField(max_length=32)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", db_index=False)
    pepper_version = models.PositiveSmallIntegerField(default=1)
    last_seen_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["last_seen_at"], name="sighting_last_seen")]
        constraints = [
            models.UniqueConstraint(
                fields=["digest", "kind", "member"], name="one_sighting_per_member"
            ),
        ]

    def __str__(self) -> str:
        return f"sighting by {self.member_id} at {self.last_seen_at:%Y-%m-%d %H:%M}"


class IdempotencyKey(models.Model):
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "key"], name="idempotency_key_once"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.key[:16]}"


class DisputeStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESPONDED = "responded", _("Responded")
    OVERDUE = "overdue", _("Overdue")
    UPHELD = "upheld", _("Upheld")
    REJECTED = "rejected", _("Rejected")


UNDECIDED_DISPUTE_STATUSES = (DisputeStatus.OPEN, DisputeStatus.RESPONDED, DisputeStatus.OVERDUE)


class Dispute(models.Model):
    class Reason(models.TextChoices):
        NOT_ME = "not_me", _("Not me")
        IDENTITY_STOLEN = "identity_stolen", _("Identity stolen")
        INACCURATE = "inaccurate", _("Inaccurate")
        RESOLVED = "resolved", _("Resolved")
        OTHER = "other", _("Other")

    class Position(models.TextChoices):
        MAINTAIN = "maintain", _("Maintain the case")
        WITHDRAW_CASE = "withdraw_case", _("Withdraw the case")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="disputes")
    filed_by = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="filed_disputes")
    reason = models.CharField(_("reason"), max_length=20, choices=Reason.choices)
    statement = models.TextField(_("statement"), blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=DisputeStatus.choices, default=DisputeStatus.OPEN
    )
    filed_at = models.DateTimeField(_("filed at"))
    due_at = models.DateTimeField(_("due at"))
    response_position = models.CharField(
        _("member's position"), max_length=16, choices=Position.choices, blank=True
    )
    response_statement = models.TextField(_("member's statement"), blank=True)
    responded_at = models.DateTimeField(_("responded at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rationale = models.TextField(_("rationale"), blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    overdue_alert_sent_at = models.DateTimeField(null=True, blank=True)
    # When the closed_text_scrub job blanked the statements and rationale of this decided
    # dispute; null while they are kept.
    text_scrubbed_at = models.DateTimeField(_("text scrubbed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(status__in=["open", "responded", "overdue"]),
                name="one_undecided_dispute_per_case",
            ),
        ]

    def __str__(self) -> str:
        return f"dispute {self.pk} ({self.status})"


class AuditEvent(models.Model):
    """Append-only. The database refuses UPDATE, DELETE and TRUNCATE (migration 0002's
    triggers, re-created on the partitioned table and each partition by 0014). Events are
    inserted freely; AuditSeal chains them afterwards (see services/audit.py), so the hot path
    never waits on a global lock. Partitioned by month of created_at (see Lookup)."""

    class ActorType(models.TextChoices):
        MEMBER = "member", _("Member")
        OFFICER = "officer", _("Officer")
        SYSTEM = "system", _("System")

    created_at = models.DateTimeField(_("time"), db_index=True)
    actor_type = models.CharField(_("actor type"), max_length=16, choices=ActorType.choices)
    member = models.ForeignKey(
        Member,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # audit_member_newest serves every read by member
        related_name="+",
    )
    api_key_prefix = models.CharField(_("API key"), max_length=16, blank=True)
    officer = models.CharField(_("officer"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=64)
    object_type = models.CharField(_("object type"), max_length=32, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    details = models.JSONField(_("details"), default=dict)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-id"]
        # Plain indexes, not db_index=True, which would add a LIKE-pattern index per column
        # that no query uses (and every write pays for).
        indexes = [
            models.Index(fields=["member", "-id"], name="audit_member_newest"),
            models.Index(fields=["action"], name="audit_action"),
            models.Index(fields=["object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action}"


class AuditSeal(models.Model):
    """The hash chain: seal n covers event `event_id` and the seal before it. Append-only too.
    Partitioned by the month of its event (`event_created_at`, copied by the sealer), so that a
    month of events and its seals are archived and dropped together. One seal per event: the
    database's unique keys must include the partition key, and an event's created_at never
    changes, so (event_id, event_created_at) is as unique as event_id."""

    seq = models.BigIntegerField(primary_key=True)
    event_id = models.BigIntegerField()
    event_created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "event_created_at"], name="audit_seal_once_per_event"
            ),
        ]

    def __str__(self) -> str:
        return f"seal {self.seq} of event {self.event_id}"


class AuditArchive(models.Model):
    """A month of the audit trail (UTC calendar month: its events and their seals) exported to
    a file and verified (registry/services/audit_archive.py). Only with this record may the
    owner drop the month (manage.py audit_drop_month). Append-only, like the trail."""

    month = models.DateField(_("month"), unique=True)  # the first day of the month
    file_sha256 = models.CharField(_("file SHA-256"), max_length=64)
    first_seq = models.BigIntegerField(_("first seal"))
    last_seq = models.BigIntegerField(_("last seal"))
    last_hash = models.CharField(_("last seal's hash"), max_length=64, blank=True, default="")
    events = models.BigIntegerField(_("events"))
    archived_at = models.DateTimeField(_("archived at"))

    class Meta:
        verbose_name = _("audit archive")
        verbose_name_plural = _("audit archives")
        ordering = ["month"]

    def __str__(self) -> str:
        return f"audit archive {self.month:%Y-%m}"


class AuditCheckpoint(models.Model):
    """The chain's head (seq, hash, time) signed with the registry's Ed25519 key, at least
    hourly. The same JSON goes to REGISTRY_AUDIT_CHECKPOINT_DIR and the dashboard, to be kept
    outside the database: `verify_audit --checkpoint FILE` then proves that the chain still
    has that head. Append-only, like the trail."""

    seq = models.BigIntegerField(_("sealed events"))
    hash = models.CharField(_("chain hash"), max_length=64)
    signed_at = models.DateTimeField(_("signed at"))
    key_id = models.CharField(_("key id"), max_length=16)
    public_key = models.CharField(_("public key"), max_length=64)
    signature = models.CharField(_("signature"), max_length=128)

    class Meta:
        verbose_name = _("audit checkpoint")
        verbose_name_plural = _("audit checkpoints")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"checkpoint of seal {self.seq}"


class AuditVerification(models.Model):
    """A passed `verify_audit`: the chain was verified up to `head_seq`, and a signed
    checkpoint (seq, hash) inside that range serves as the next incremental run's anchor
    (services/audit.py). Append-only, like the trail."""

    checkpoint = models.ForeignKey(
        AuditCheckpoint,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("checkpoint"),
    )
    seq = models.BigIntegerField(_("checkpoint's seal"))
    hash = models.CharField(_("chain hash"), max_length=64)
    head_seq = models.BigIntegerField(_("verified up to seal"))
    full = models.BooleanField(_("full walk"))
    verified_at = models.DateTimeField(_("verified at"))

    class Meta:
        verbose_name = _("audit verification")
        verbose_name_plural = _("audit verifications")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"verified to seal {self.head_seq}"


class JobRun(models.Model):
    """What each background job did, for operators and the admin's job-health panel."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    job = models.CharField(_("job"), max_length=40, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    details = models.JSONField(_("details"), default=dict)

    class Meta:
        verbose_name = _("job run")
        verbose_name_plural = _("job runs")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class OutboxTask(models.Model):
    """A Celery task recorded in the same transaction as the write that needs it, so that a
    broker outage delays side effects instead of failing API calls. Published on commit
    (`published_at`); `done_at` is set only when the task has done its work (the worker
    marks it, registry/tasks/outbox.py). The sweeper publishes what was never published, and
    publishes again what was published but not done long after the longest task could have
    ended (its worker died, or the broker lost it)."""

    task = models.CharField(max_length=100)
    kwargs = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_not_done",
                condition=Q(done_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.task} #{self.pk}"


class RegistryState(models.Model):
    """Single-row operational state (e.g. pepper rotation progress)."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class WatchPurpose(models.TextChoices):
    LOAN_MONITORING = "loan_monitoring", _("Loan monitoring")
    ACCOUNT_MONITORING = "account_monitoring", _("Account monitoring")


class Watch(models.Model):
    """A member watching one identifier (as a peppered digest, like CaseIdentifier) for the
    life of a loan, with the subject's consent. One per (member, kind, digest): watching again
    extends it. DELETED (not flagged) when the member deletes it or it expires."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="watches", db_index=False
    )
    kind = models.CharField(_("kind"), max_length=16, choices=IdentifierKind.choices)
    digest = models.BinaryField(max_length=32)
    pepper_version = models.PositiveSmallIntegerField(default=1)
    fingerprint = models.CharField(_("fingerprint"), max_length=16)
    purpose = models.CharField(_("purpose"), max_length=32, choices=WatchPurpose.choices)
    consent_reference = models.CharField(_("consent reference"), max_length=100)
    label = models.CharField(_("label"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"))
    expires_on = models.DateField(_("expires on"))

    class Meta:
        verbose_name = _("watch")
        verbose_name_plural = _("watches")
        indexes = [
            models.Index(fields=["digest", "kind"], name="watch_digest"),
            models.Index(fields=["member", "-created_at", "-id"], name="watch_member_newest"),
            models.Index(fields=["expires_on"], name="watch_expiry"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "kind", "digest"], name="one_watch_per_identifier"
            ),
        ]

    def __str__(self) -> str:
        return f"watch {self.pk}"


class AlertType(models.TextChoices):
    CASE_REPORTED = "case.reported", _("Case reported")
    CASE_CLEARED = "case.cleared", _("Case cleared")
    VELOCITY_EXCEEDED = "velocity.exceeded", _("Velocity exceeded")


class Alert(models.Model):
    """One alert to one member about one of its watches, created once per (watch, cause):
    `cause` names the event (the case and how many alerts of that case this watch had
    before, or the velocity window), and the unique constraint makes a retried or concurrent
    fan-out a no-op. The watch's label, kind and fingerprint and the case's fields are copied:
    the alert outlives a deleted watch for its 90 days. Never a token, never the reporter.

    `tx` is the id of the inserting transaction: the pull API pages by (tx, id) and only
    shows transactions older than every running one, so a cursor never skips an alert that
    commits late."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="alerts", db_index=False
    )
    watch_id = models.UUIDField(_("watch"))
    type = models.CharField(_("type"), max_length=32, choices=AlertType.choices)
    cause = models.CharField(max_length=80)
    created_at = models.DateTimeField(_("created at"))
    tx = models.BigIntegerField(
        db_default=models.Func(function="txid_current", output_field=models.BigIntegerField())
    )
    label = models.CharField(_("label"), max_length=100, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=IdentifierKind.choices)
    fingerprint = models.CharField(_("fingerprint"), max_length=16)
    case_id = models.UUIDField(null=True, blank=True)
    case = models.JSONField(null=True, blank=True)  # {case_id, category, confirmed_at, status}
    velocity = models.JSONField(null=True, blank=True)  # {"24h": n, "threshold": t}

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        indexes = [
            models.Index(fields=["member", "tx", "id"], name="alert_member_order"),
            models.Index(fields=["created_at"], name="alert_created"),
            models.Index(fields=["case_id"], name="alert_case"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["watch_id", "cause"], name="one_alert_per_cause"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.pk}"


class WebhookEndpoint(models.Model):
    """Where a member wants its alerts pushed (Standard Webhooks). The signing secret is kept
    to sign (HMAC is symmetric) and shown to the member once, when the endpoint is created.
    `failing_since`: a delivery was given up after 24 hours of retries; officers see it, and
    the next successful delivery clears it."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="webhook_endpoints", db_index=False
    )
    url = models.URLField(_("URL"), max_length=2000)
    events = ArrayField(models.CharField(max_length=32), verbose_name=_("events"))
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(_("created at"))
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)
    last_failure_at = models.DateTimeField(_("last failure"), null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(_("consecutive failures"), default=0)
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        indexes = [models.Index(fields=["member", "-created_at"], name="webhook_member_newest")]

    def __str__(self) -> str:
        return f"webhook {self.pk}"


class WebhookDelivery(models.Model):
    """One message to one endpoint, delivered at least once: `msg_id` is the webhook-id (the
    alert id, or test_<id> for a test event), the receiver's idempotency key. A worker takes
    a due delivery by moving `next_attempt_at` one lease ahead before it sends, so a worker
    killed mid-delivery leaves it due again when the lease ends. Response bodies are never
    stored: only the status code or the kind of failure."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    msg_id = models.CharField(max_length=64)
    event_type = models.CharField(_("event"), max_length=32)
    data = models.JSONField()
    event_at = models.DateTimeField()
    created_at = models.DateTimeField(_("created at"))
    next_attempt_at = models.DateTimeField(_("next attempt"))
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    gave_up_at = models.DateTimeField(_("gave up at"), null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(delivered_at__isnull=True, gave_up_at__isnull=True),
            ),
            models.Index(fields=["created_at"], name="webhook_delivery_created"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "msg_id"], name="one_delivery_per_message"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.msg_id} #{self.pk}"


class Ring(models.Model):
    """A connected component of the graph whose nodes are live cases and whose edges join two
    cases of DIFFERENT members that share an identifier (same kind, digest and pepper
    version): at least two cases of at least two members. Kept by services/rings.py, from
    the cases' identifiers alone (tokens, never raw identifiers), incrementally after each
    submission and closure and by a daily full rebuild. Officers only; no API shows it.

    A ring keeps its id (and `first_seen_at`) while it grows, shrinks or absorbs another: the
    component that shares most cases with it inherits it."""

    size = models.PositiveIntegerField(_("cases"))
    member_count = models.PositiveIntegerField(_("members"))
    shared_identifiers = models.PositiveIntegerField(_("shared identifiers"), default=0)
    # Cases of the ring reported within the last 7 and 30 days (by the case's created_at, as
    # of `computed_at`): its size a week or a month ago is size minus these.
    grown_7d = models.PositiveIntegerField(_("new cases in 7 days"), default=0)
    grown_30d = models.PositiveIntegerField(_("new cases in 30 days"), default=0)
    first_seen_at = models.DateTimeField(_("first seen"))
    last_grown_at = models.DateTimeField(_("newest case"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("ring")
        verbose_name_plural = _("rings")
        ordering = ["-size", "-id"]
        indexes = [
            models.Index(fields=["-size", "-id"], name="ring_largest"),
            models.Index(fields=["-grown_7d", "-id"], name="ring_growing"),
            models.Index(fields=["-grown_30d", "-id"], name="ring_growing_month"),
        ]

    def __str__(self) -> str:
        return f"ring {self.pk} ({self.size})"


class RingCase(models.Model):
    """A live case's ring (a case is in one ring at most)."""

    case = models.OneToOneField(
        Case, primary_key=True, on_delete=models.CASCADE, related_name="ring_membership"
    )
    ring = models.ForeignKey(
        Ring, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )

    class Meta:
        verbose_name = _("case of a ring")
        verbose_name_plural = _("cases of rings")
        indexes = [models.Index(fields=["ring"], name="ringcase_ring")]

    def __str__(self) -> str:
        return f"{self.case_id} in ring {self.ring_id}"
