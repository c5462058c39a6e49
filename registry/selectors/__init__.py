"""Reads, always scoped to the caller.

Most selectors only read. A few are *audited reads*: the contract audits every call that reads
registry data (a member listing or opening its cases or disputes, an officer's subject access
report), so those selectors record one audit event (`audit_record`, in the caller's
transaction) as part of the read. That event is the only thing a selector ever writes, and
`registry.services.audit` is the only service a selector imports; their docstrings say
"Audited read". Anything else that writes belongs in registry/services/.
"""
