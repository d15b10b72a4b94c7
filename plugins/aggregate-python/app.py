"""aggregate (Python): keyed window statistics — count, sum, avg, min or max of a numeric field
per key and window — the same operator as plugins/aggregate (Rust), with the same config and
output, so that the tests can compare the two:

    window: {kind: tumbling, size: 1m}
    config: {function: sum, field: /amount}   # count needs no field; `output` renames the result

Output per (key, window): {"key": …, "start": …, "end": …, "sum": 12.5, "count": 3} (with
"firing" when late events update a window). Events without a numeric field are rejected.

The host keeps the accumulators (one per key and window, in its keyed state, checkpointed); this
code only folds events into them: 32 bytes, count (u64) then sum, min, max (f64), little-endian.
"""

import json
import math
import struct

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import aggregate
from wit_world.imports import types

ACC = struct.Struct("<Qddd")
FUNCTIONS = ("count", "sum", "avg", "min", "max")

function = "count"
field = None  # a parsed JSON pointer: a list of tokens
output = "count"


def invalid(message: str) -> Err:
    return Err(types.Error_InvalidConfig(message))


def parse_pointer(text: str):
    if not isinstance(text, str) or not text.startswith("/"):
        raise invalid(f"`field`: {text!r} is not a JSON pointer (e.g. /amount)")
    return [t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/")]


def lookup(value, pointer):
    for token in pointer:
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
    return value


def number(x):
    """A float as JSON (non-finite values as null, like serde_json)."""
    return x if math.isfinite(x) else None


class Aggregate(exports.Aggregate):
    def init(self, config: str) -> None:
        global function, field, output
        given = json.loads(config)
        if not isinstance(given, dict):
            raise invalid("the config must be a map: {function: count|sum|avg|min|max, field: /pointer}")
        unknown = set(given) - {"function", "field", "output"}
        if unknown:
            raise invalid(f"unknown setting {sorted(unknown)[0]!r} (expected function, field, output)")
        function = given.get("function")
        if function not in FUNCTIONS:
            raise invalid(f"`function` must be one of {', '.join(FUNCTIONS)}")
        field = parse_pointer(given["field"]) if given.get("field") is not None else None
        if field is None and function != "count":
            raise invalid(f"`{function}` needs a `field` (a JSON pointer to a number, e.g. /amount)")
        output = given.get("output", function)
        if output in ("key", "start", "end", "firing") or (output == "count" and function != "count"):
            raise invalid(f"`output: {output}` would collide with the `{output}` field every result carries; choose another name")

    def create_accumulator(self) -> bytes:
        return ACC.pack(0, 0.0, math.inf, -math.inf)

    def add(self, accumulators: aggregate.Accumulators, input: types.Batch, slots) -> aggregate.Added:
        accs = []
        start = 0
        for end in accumulators.ends:
            accs.append(list(ACC.unpack_from(accumulators.bytes, start)))
            start = end
        rejected = []
        start = 0
        for i, end in enumerate(input.value_ends):
            raw = input.values[start:end]
            start = end
            acc = accs[slots[i]]
            if field is None:
                acc[0] += 1
                continue
            try:
                x = lookup(json.loads(raw), field)
            except ValueError:
                rejected.append(types.Rejection(event=i, reason="the value is not JSON"))
                continue
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                pointer = "/" + "/".join(field)
                reason = f"no field {pointer}" if x is None else f"{pointer} is not a number: {json.dumps(x)}"
                rejected.append(types.Rejection(event=i, reason=reason))
                continue
            acc[0] += 1
            acc[1] += x
            acc[2] = min(acc[2], x)
            acc[3] = max(acc[3], x)
        packed = bytearray()
        ends = []
        for acc in accs:
            packed += ACC.pack(*acc)
            ends.append(len(packed))
        return aggregate.Added(
            accumulators=aggregate.Accumulators(bytes=bytes(packed), ends=ends), rejected=rejected
        )

    def merge(self, a: bytes, b: bytes) -> bytes:
        ca, sa, lo_a, hi_a = ACC.unpack(a)
        cb, sb, lo_b, hi_b = ACC.unpack(b)
        return ACC.pack(ca + cb, sa + sb, min(lo_a, lo_b), max(hi_a, hi_b))

    def finish(self, fired: aggregate.Fired) -> types.Batch:
        values, value_ends, keys, key_ends, timestamps = bytearray(), [], bytearray(), [], []
        kstart = astart = 0
        for i, (start, end) in enumerate(zip(fired.starts, fired.ends)):
            key = fired.keys[kstart:fired.key_ends[i]]
            acc = fired.accumulators[astart:fired.accumulator_ends[i]]
            kstart, astart = fired.key_ends[i], fired.accumulator_ends[i]
            count, total, low, high = ACC.unpack(acc)
            result = {
                "count": count,
                "sum": number(total),
                "avg": number(total / max(count, 1)),
                "min": number(low),
                "max": number(high),
            }[function]
            line = {"key": key.decode("utf-8", "replace"), "start": start, "end": end, output: result, "count": count}
            if fired.firings[i] > 0:
                line["firing"] = fired.firings[i]
            values += json.dumps(line, separators=(",", ":")).encode()
            value_ends.append(len(values))
            keys += key
            key_ends.append(len(keys))
            timestamps.append(end - 1)
        return types.Batch(
            values=bytes(values), value_ends=value_ends, keys=bytes(keys), key_ends=key_ends,
            timestamps=timestamps, headers=[],
        )
