"""Time-ordered ids for the tables that grow with every call.

A random UUID (version 4) sends each new row of a large table to a random leaf of its primary
key index, and of every index that leads with that key (a case's identifiers, a lookup's log
rows): once those indexes outgrow PostgreSQL's shared buffers, each insert reads and dirties
a page of its own. A version 7 UUID (RFC 9562) starts with the time in milliseconds, so new
rows land together at one end of those indexes. The rest is random (74 bits), so ids stay
unguessable; what one reveals is when the row was created, which every id's owner sees
anyway.
"""

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """RFC 9562 version 7: 48 bits of Unix time in ms, version, 74 random bits, variant."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10)) & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122/9562 variant
    return uuid.UUID(int=value)
