"""Who is acting: a member (through one of its API keys), a compliance officer (through the
admin or an officer key), or the system (jobs). Every service takes one, and every audit
event records one."""

from dataclasses import dataclass, field

from django.utils.functional import cached_property


@dataclass(frozen=True)
class Actor:
    type: str  # "member" | "officer" | "system"
    member: object | None = None  # registry.models.Member
    user: object | None = None  # the officer's django.contrib.auth user
    api_key: object | None = None  # registry.models.ApiKey
    scopes: frozenset[str] = field(default_factory=frozenset)

    # DRF treats request.user as the principal.
    is_authenticated = True
    is_anonymous = False

    @classmethod
    def for_api_key(cls, key) -> "Actor":
        if key.member_id:
            return cls("member", member=key.member, api_key=key, scopes=frozenset(key.scopes))
        return cls("officer", user=key.officer, api_key=key, scopes=frozenset(key.scopes))

    @classmethod
    def for_officer(cls, user) -> "Actor":
        return cls("officer", user=user, scopes=frozenset({"compliance"}))

    @classmethod
    def system(cls) -> "Actor":
        return cls("system")

    @property
    def is_member(self) -> bool:
        return self.type == "member"

    @property
    def is_officer(self) -> bool:
        return self.type == "officer"

    @property
    def member_id(self) -> int | None:
        return getattr(self.member, "pk", None)

    @cached_property
    def officer_username(self) -> str:
        return self.user.get_username() if self.user is not None else ""

    @property
    def api_key_prefix(self) -> str:
        return self.api_key.prefix if self.api_key is not None else ""

    def __str__(self) -> str:
        if self.is_member:
            return f"member:{self.member.code}"
        if self.is_officer:
            return f"officer:{self.officer_username}"
        return "system"
