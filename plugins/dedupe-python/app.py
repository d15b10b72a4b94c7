"""dedupe (Python): the idempotent consumer — pass the first event of each id, drop the events
whose id was seen within a TTL — the same as plugins/dedupe (Rust). Run it with `key-by` on the
id; the host keeps one small entry per id in keyed state and forgets it after the TTL.

    key-by: /id
    config: {ttl: 10m}

The number of dropped duplicates is the operator metric `duplicates`.
"""

import re

import flowlet

UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
PART = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d)")
ttl = [0]


def duration(text):
    """Milliseconds of a duration like 10m, 1h30m, 500ms."""
    parts = PART.findall(text) if isinstance(text, str) else []
    if not parts or PART.sub("", text).strip():
        raise flowlet.InvalidConfig(f"`ttl` {text!r}: not a duration (write e.g. 10m, 1h30m, 500ms)")
    return sum(int(n) * UNITS[unit] for n, unit in parts)


@flowlet.init
def setup(config):
    given = flowlet.settings({"ttl": ""})
    if not given["ttl"]:
        raise flowlet.InvalidConfig("`ttl` is missing (write e.g. 10m)")
    ttl[0] = duration(given["ttl"])
    if ttl[0] == 0:
        raise flowlet.InvalidConfig("`ttl` must be longer than 0")


@flowlet.stateful
def dedupe(event, out):
    if event.key is None:
        raise flowlet.Reject("the event has no key; give the dedupe operator `key-by:` the id field")
    if event.state.get("seen") is not None:
        flowlet.metrics.counter_add("duplicates")
        return
    event.state.put("seen", b"\x01", ttl=ttl[0])
    out.forward()
