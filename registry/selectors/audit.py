from registry.actors import Actor
from registry.models import AuditEvent


def audit_events_for(*, actor: Actor):
    """A member sees its own events; an officer sees all."""
    events = AuditEvent.objects.all()
    if not actor.is_officer:
        events = events.filter(member_id=actor.member_id)
    return events.order_by("-id")
