"""aggregate (Python): keyed window statistics — count, sum, avg, min or max of a numeric field
per key and window — the same operator as plugins/aggregate (Rust), with the same config and
output, so that the tests can compare the two:

    window: {kind: tumbling, size: 1m}
    config: {function: sum, field: /amount}   # count needs no field; `output` renames the result

Output per (key, window): {"key": …, "start": …, "end": …, "sum": 12.5, "count": 3} (with
"firing" when late events update a window). Events without a numeric field are rejected. The
host keeps the accumulators (one per key and window, checkpointed); this code folds events into
them: [count, sum, min, max].
"""

import json
import math

import flowlet

FUNCTIONS = ("count", "sum", "avg", "min", "max")


def pointer(text):
    if not isinstance(text, str) or not text.startswith("/"):
        raise flowlet.InvalidConfig(f"`field`: {text!r} is not a JSON pointer (e.g. /amount)")
    return text, [t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/")]


def lookup(value, tokens):
    for token in tokens:
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
    return value


def finite(x):
    """A float as JSON: non-finite values as null, like serde_json."""
    return x if math.isfinite(x) else None


@flowlet.aggregate
class Stats:
    def __init__(self, config):
        unknown = set(config) - {"function", "field", "output"}
        if unknown:
            raise flowlet.InvalidConfig(f"unknown setting {sorted(unknown)[0]!r} (expected function, field, output)")
        self.function = config.get("function")
        if self.function not in FUNCTIONS:
            raise flowlet.InvalidConfig(f"`function` must be one of {', '.join(FUNCTIONS)}")
        self.field = pointer(config["field"]) if config.get("field") is not None else None
        if self.field is None and self.function != "count":
            raise flowlet.InvalidConfig(f"`{self.function}` needs a `field` (a JSON pointer to a number, e.g. /amount)")
        self.output = config.get("output", self.function)
        if self.output in ("key", "start", "end", "firing") or (self.output == "count" and self.function != "count"):
            raise flowlet.InvalidConfig(
                f"`output: {self.output}` would collide with the `{self.output}` field every result carries; choose another name")

    def create(self):
        return [0, 0.0, math.inf, -math.inf]

    def add(self, acc, event):
        if self.field is None:
            return [acc[0] + 1, *acc[1:]]
        try:
            x = lookup(json.loads(event.value), self.field[1])
        except ValueError:
            raise flowlet.Reject("the value is not JSON") from None
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            name = self.field[0]
            raise flowlet.Reject(f"no field {name}" if x is None else f"{name} is not a number: {json.dumps(x)}")
        return [acc[0] + 1, acc[1] + x, min(acc[2], x), max(acc[3], x)]

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3])]

    def finish(self, acc, window, out):
        count, total, low, high = acc
        result = {"count": count, "sum": finite(total), "avg": finite(total / max(count, 1)),
                  "min": finite(low), "max": finite(high)}[self.function]
        line = {"key": window.key_text or "", "start": window.start, "end": window.end, self.output: result, "count": count}
        if window.firing:
            line["firing"] = window.firing
        out.emit(line)
