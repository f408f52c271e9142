"""Schemathesis hooks for `tests/api/spec.rs`: no request for a stream that lasts hours.

Schemathesis reads every response to its end, and a valid request may ask for a stream that
lasts hours (`interval_ms` up to a minute, `count` up to a hundred million). Just before a
request goes out, a stream longer than a moment is shortened, its parameters kept valid:
fewer chunks, closer together. Parameters that are not valid (not numbers, out of range) are
left as they are, so the server still refuses them; so is everything else of the request.
"""

import schemathesis

# What a stream may ask for: this many chunks, this many milliseconds apart in all.
MAX_CHUNKS = 1000
MAX_MS = 500

# The documented ranges: a value outside them is refused at once, and left alone.
MAX_COUNT = 100_000_000
MAX_INTERVAL_MS = 60_000


def valid(query, name, default, maximum):
    """The parameter as a number when it is a valid one, else None."""
    value = query.get(name, default)
    if isinstance(value, list):
        if len(value) != 1:
            return None
        value = value[0]
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            return None
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= maximum:
        return None
    return value


@schemathesis.hook
def before_call(context, case, kwargs):
    query = case.query
    if not isinstance(query, dict):
        return
    count = valid(query, "count", 10, MAX_COUNT)
    interval = valid(query, "interval_ms", 0, MAX_INTERVAL_MS)
    start = valid(query, "start", 0, MAX_COUNT)
    if count is None or interval is None or start is None or start > count:
        return
    chunks = count - start
    if chunks > MAX_CHUNKS:
        chunks = MAX_CHUNKS
        query["count"] = start + chunks
    if chunks * interval > MAX_MS:
        query["interval_ms"] = MAX_MS // chunks
