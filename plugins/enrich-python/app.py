"""enrich (Python): the sample JSON enrich-and-filter operator, the same as plugins/enrich (Rust),
plugins/enrich-c and plugins/enrich-js — see plugins/enrich/src/lib.rs for what it does."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

REGIONS = {
    **dict.fromkeys(["at", "be", "de", "dk", "es", "fi", "fr", "ie", "it", "nl", "pl", "pt", "se"], "eu"),
    **dict.fromkeys(["ca", "mx", "us"], "na"),
    **dict.fromkeys(["au", "cn", "in", "jp", "kr", "sg"], "apac"),
}

settings = {"min-amount": 0.0, "high-amount": 1000.0}


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def region(country) -> str:
    if not isinstance(country, str):
        return "other"
    # ASCII case only, as in the other languages.
    return REGIONS.get(country.encode().lower().decode(), "other")


class Handler(exports.Handler):
    def init(self, config: str) -> None:
        given = json.loads(config)
        if given is None:
            return
        if not isinstance(given, dict):
            raise Err(types.Error_InvalidConfig("the config must be a map (min-amount, high-amount)"))
        for name, value in given.items():
            if name not in settings:
                raise Err(types.Error_InvalidConfig(
                    f'unknown setting "{name}" (expected min-amount, high-amount)'))
            if not is_number(value):
                raise Err(types.Error_InvalidConfig(f"`{name}` must be a number"))
            settings[name] = value

    def process(self, input: types.Batch) -> types.Output:
        low, high = settings["min-amount"], settings["high-amount"]
        values, value_ends, keys, key_ends, timestamps, rejected = bytearray(), [], bytearray(), [], [], []
        start = kstart = 0
        for i, end in enumerate(input.value_ends):
            kend = input.key_ends[i]
            raw, key = input.values[start:end], input.keys[kstart:kend]
            start, kstart = end, kend
            try:
                event = json.loads(raw)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                rejected.append(types.Rejection(event=i, reason="the value is not a JSON object"))
                continue
            amount = event.get("amount")
            if not is_number(amount):
                rejected.append(types.Rejection(event=i, reason="`amount` is missing or not a number"))
                continue
            if amount < low:
                continue
            event["tier"] = "high" if amount >= high else "low"
            event["region"] = region(event.get("country"))
            values += json.dumps(event, separators=(",", ":")).encode()
            value_ends.append(len(values))
            keys += key
            key_ends.append(len(keys))
            timestamps.append(input.timestamps[i])
        batch = types.Batch(
            values=bytes(values), value_ends=value_ends, keys=bytes(keys), key_ends=key_ends,
            timestamps=timestamps, headers=[],
        )
        return types.Output(events=batch, rejected=rejected)
