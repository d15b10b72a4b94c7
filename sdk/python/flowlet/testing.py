"""Unit tests of flowlet operators without Wasm: the same code paths as the component (a batch
in the host's column layout → your functions → output columns), over an in-memory host with
keyed state, TTL, timers and clocks you move by hand.

    from flowlet.testing import Harness, event
    import app

    def test_high_amounts_pass():
        h = Harness(app, config={"min-amount": 100})
        out = h.process([{"amount": 150}, {"amount": 5}, "not json"])
        assert out.json == [{"amount": 150, "tier": "low", "region": "other"}]
        assert out.rejected == [(2, "the value is not JSON (…)")]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import flowlet

from ._core import EVENT_TIME, PROCESSING_TIME, Aggregation, Window, _bytes, dumps, fire_timers, process_batch

__all__ = ["AggregateHarness", "Harness", "Result", "event"]


@dataclass
class Header:
    event: int
    name: str
    value: bytes


@dataclass
class Batch:
    """A batch in the host's layout (the same fields as the WIT record)."""

    values: bytes = b""
    value_ends: list = field(default_factory=list)
    keys: bytes = b""
    key_ends: list = field(default_factory=list)
    timestamps: list = field(default_factory=list)
    headers: list = field(default_factory=list)


@dataclass
class TestEvent:
    value: bytes
    key: bytes = b""
    timestamp: int = 0
    headers: tuple = ()


def event(value, key=None, timestamp: int = 0, headers: Iterable = ()) -> TestEvent:
    """An input event: `value` as bytes or str (taken as is) or anything JSON (encoded)."""
    if not isinstance(value, (bytes, str, bytearray)):
        value = dumps(value)
    return TestEvent(_bytes(value, "a value"), b"" if key is None else _bytes(key, "a key"), int(timestamp),
                     tuple(headers))


def batch_of(events: Iterable) -> Batch:
    """Pack events (values, or `event(...)`) column-wise, as the host does."""
    b = Batch()
    values, keys = bytearray(), bytearray()
    for i, e in enumerate(events):
        e = e if isinstance(e, TestEvent) else event(e)
        values += e.value
        b.value_ends.append(len(values))
        keys += e.key
        b.key_ends.append(len(keys))
        b.timestamps.append(e.timestamp)
        b.headers += [Header(i, n, _bytes(v, "a header value")) for n, v in e.headers]
    b.values, b.keys = bytes(values), bytes(keys)
    return b


@dataclass
class Emitted:
    value: bytes
    key: Optional[bytes]
    timestamp: int
    headers: list

    @property
    def json(self):
        return json.loads(self.value)


@dataclass
class Result:
    """What one call emitted, and the input events it refused as (index, reason)."""

    events: list
    rejected: list
    #: One route mask per event ([]: all to the main output); `on(name)` reads one output.
    routes: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def on(self, output: str = "main") -> list:
        """The events sent to `output`: "main", or one of the operator's named outputs."""
        bit = 1 if output == "main" else 1 << (self.outputs.index(output) + 1)
        return [e for i, e in enumerate(self.events)
                if (self.routes[i] if i < len(self.routes) else 1) & bit]

    @property
    def values(self) -> list:
        return [e.value for e in self.events]

    @property
    def json(self) -> list:
        return [e.json for e in self.events]

    @property
    def keys(self) -> list:
        return [e.key for e in self.events]

    @property
    def timestamps(self) -> list:
        return [e.timestamp for e in self.events]


def _result(out, rejected=()) -> Result:
    routes = out.finished_routes()
    events = []
    start = kstart = 0
    for i, end in enumerate(out.value_ends):
        kend = out.key_ends[i]
        events.append(Emitted(bytes(out.values[start:end]), bytes(out.keys[kstart:kend]) or None,
                              out.timestamps[i], [(n, v) for j, n, v in out.headers if j == i]))
        start, kstart = end, kend
    return Result(events, list(rejected), list(routes), list(flowlet.setup.outputs))


class LogHost:
    """What every world imports: logs and metrics, recorded."""

    def __init__(self):
        self.logs: list = []  # (level, message)
        self.counters: dict = {}
        self.gauges: dict = {}

    def log(self, level, message):
        self.logs.append((level, message))

    def counter_add(self, name, delta):
        self.counters[name] = self.counters.get(name, 0) + delta

    def gauge_set(self, name, value):
        self.gauges[name] = value


class MemoryHost(LogHost):
    """Keyed state, TTL, timers and clocks in memory, with the semantics of flowlet's host: an
    entry put with a ttl reads as absent once the processing time reaches put time + ttl; a timer
    fires once when its clock reaches its time; registering it twice fires it once."""

    def __init__(self):
        super().__init__()
        self.values: dict = {}  # (key, name) -> (value, expires or None)
        self.maps: dict = {}  # (key, name) -> {map key: (value, expires)}
        self.timers: set = set()  # (key, domain, at)
        self.watermark = -(1 << 63)
        self.now = 0

    def _live(self, entry):
        if entry is None:
            return None
        value, expires = entry
        return None if expires is not None and self.now >= expires else value

    def _expiry(self, ttl):
        return None if ttl is None else self.now + ttl

    def value_get(self, key, name):
        return self._live(self.values.get((key, name)))

    def value_put(self, key, name, value, ttl):
        self.values[(key, name)] = (bytes(value), self._expiry(ttl))

    def value_delete(self, key, name):
        self.values.pop((key, name), None)

    def map_get(self, key, name, map_key):
        return self._live(self.maps.get((key, name), {}).get(map_key))

    def map_put(self, key, name, map_key, value, ttl):
        self.maps.setdefault((key, name), {})[bytes(map_key)] = (bytes(value), self._expiry(ttl))

    def map_delete(self, key, name, map_key):
        self.maps.get((key, name), {}).pop(map_key, None)

    def map_range(self, key, name, start, end, limit):
        entries = self.maps.get((key, name), {})
        out = []
        for k in sorted(entries):
            if k < start or (end and k >= end):
                continue
            v = self._live(entries[k])
            if v is not None:
                out.append((k, v))
                if len(out) >= limit:
                    break
        return out

    def register(self, key, domain, at):
        self.timers.add((bytes(key), domain, at))

    def cancel(self, key, domain, at):
        self.timers.discard((bytes(key), domain, at))

    def current_watermark(self):
        return self.watermark

    def current_processing_time(self):
        return self.now

    def due(self, domain, upto):
        """The timers of `domain` at or before `upto`, removed, in time (then key) order."""
        fired = sorted((t for t in self.timers if t[1] == domain and t[2] <= upto), key=lambda t: (t[2], t[0]))
        self.timers.difference_update(fired)
        return fired


class _HostScope:
    def __init__(self, host):
        self.host = host

    def __enter__(self):
        self.saved = flowlet._HOST[0]
        flowlet._HOST[0] = self.host

    def __exit__(self, *exc):
        flowlet._HOST[0] = self.saved


class Harness:
    """Drive a `@flowlet.processor` or `@flowlet.stateful` operator: `target` is its module, or
    its decorated function. `config` is what the manifest's `config:` would hold; an invalid one
    raises `flowlet.InvalidConfig` here, as `init` refuses it in the host. `inputs` and
    `outputs` are the manifest's names of the operator's inputs and named outputs."""

    def __init__(self, target, config: Any = None, inputs=("input",), outputs=()):
        self.spec = flowlet.spec_of(target)
        if self.spec.kind == "aggregate":
            raise TypeError("an @flowlet.aggregate class is tested with AggregateHarness")
        # A processor gets no keyed state or timers, as in its world.
        self.host = MemoryHost() if self.spec.kind == "stateful" else LogHost()
        self.setup = flowlet.Setup("operator", inputs, outputs)
        with _HostScope(self.host):
            flowlet.configure(self.spec, json.dumps(config), self.setup)

    def process(self, events: Iterable, input: Optional[str] = None) -> Result:
        """One batch of events: values (bytes/str as is, anything else as JSON) or `event(...)`,
        from `input` (default: the first input)."""
        origin = self.setup.inputs[0] if input is None else input
        if origin not in self.setup.inputs:
            raise ValueError(f"no input {origin!r}: the harness has {self.setup.inputs}")
        with _HostScope(self.host):
            out, rejected = process_batch(batch_of(events), self.spec.process, self.host, origin)
        return _result(out, rejected)

    def _fire(self, domain, upto) -> Result:
        if not isinstance(self.host, MemoryHost):
            return Result([], [])  # a processor has no timers
        with _HostScope(self.host):
            return _result(fire_timers(self.host.due(domain, upto), self.spec.on_timer, self.host))

    def advance_watermark(self, watermark: int) -> Result:
        """Move the watermark; event-time timers at or before it fire, in time order."""
        if isinstance(self.host, MemoryHost):
            self.host.watermark = max(self.host.watermark, watermark)
        return self._fire(EVENT_TIME, watermark)

    def set_processing_time(self, now: int) -> Result:
        """Move the clock: processing-time timers fire, entries past their ttl expire."""
        if isinstance(self.host, MemoryHost):
            self.host.now = now
        return self._fire(PROCESSING_TIME, now)

    def state(self, key) -> flowlet.State:
        """The keyed state of `key`, to read (or prepare) in a test."""
        return flowlet.State(self.host, _bytes(key, "a key"))

    def timers(self) -> list:
        """Pending timers: sorted (key, domain, at)."""
        return sorted(self.host.timers, key=lambda t: (t[2], t[0], t[1]))

    @property
    def logs(self) -> list:
        return self.host.logs

    @property
    def counters(self) -> dict:
        return self.host.counters

    @property
    def gauges(self) -> dict:
        return self.host.gauges


class AggregateHarness:
    """Drive a `@flowlet.aggregate` class: fold events into an accumulator, merge, finish — or
    run whole tumbling windows. Accumulators cross the same encoding as in the host."""

    def __init__(self, target, config: Any = None):
        self.spec = flowlet.spec_of(target)
        if self.spec.kind != "aggregate":
            raise TypeError("AggregateHarness is for @flowlet.aggregate classes; use Harness")
        self.host = LogHost()
        with _HostScope(self.host):
            self.agg = Aggregation(flowlet.configure(self.spec, json.dumps(config)), self.spec.codec)
        self.rejected: list = []

    def create(self) -> bytes:
        return self.agg.create()

    def fold(self, events: Iterable, acc: Optional[bytes] = None) -> bytes:
        """Fold events into `acc` (a fresh accumulator by default); the encoded accumulator.
        Refused events are in `self.rejected` as (index, reason)."""
        codec = self.agg.codec
        accs = [codec.decode(self.create() if acc is None else acc)]
        b = batch_of(events)
        with _HostScope(self.host):
            self.rejected = self.agg.add(accs, b, [0] * len(b.value_ends), self.host)
        return codec.encode(accs[0])

    def value(self, acc: bytes):
        """An encoded accumulator, decoded."""
        return self.agg.codec.decode(acc)

    def merge(self, a: bytes, b: bytes) -> bytes:
        return self.agg.merge(a, b)

    def finish(self, acc: bytes, start: int = 0, end: int = 1, key=None, firing: int = 0) -> Result:
        with _HostScope(self.host):
            return _result(self.agg.finish([(Window(start, end, None if key is None else _bytes(key, "a key"), firing), acc)]))

    def tumbling(self, events: Iterable, size: int) -> Result:
        """Every event (use `event(value, key=…, timestamp=…)`) into its tumbling window of `size`
        ms per key, then every window finished in (end, key) order, as the host fires them when
        the input ends. Refused events are in the result's `rejected`."""
        events = [e if isinstance(e, TestEvent) else event(e) for e in events]
        windows: dict = {}
        slots: list = []
        for e in events:
            start = e.timestamp - e.timestamp % size
            slots.append(windows.setdefault((start + size, e.key, start), len(windows)))
        codec = self.agg.codec
        accs = [codec.decode(self.create()) for _ in windows]
        with _HostScope(self.host):
            rejected = self.agg.add(accs, batch_of(events), slots, self.host)
            fired = [(Window(start, end, key), codec.encode(accs[slot]))
                     for (end, key, start), slot in sorted(windows.items())]
            out = self.agg.finish(fired)
        return _result(out, rejected)
