"""The batch machinery shared by the component and the test harness: an event view over the
column-wise batch, the output builder, per-event rejection, keyed state and timers over a host.

Nothing here imports the component bindings: the component glue (`_component`) and the test
harness (`testing`) each hand in a host — the WIT imports, or an in-memory store.
"""

from __future__ import annotations

import copy
import json
import pickle
from datetime import timedelta
from typing import Any, Callable, Iterable, Optional

EVENT_TIME = "event-time"
PROCESSING_TIME = "processing-time"
DOMAINS = (EVENT_TIME, PROCESSING_TIME)


class Reject(Exception):
    """Raise in `process` or `add` to refuse the current event: it meets the operator's
    `on-error` policy (skip, dead-letter, fail) with this reason; the rest of the batch goes on."""


class InvalidConfig(Exception):
    """Raise in an `@flowlet.init` function: the topology does not start, and the message (which
    should name the setting) is shown to the user as the operator's invalid config."""


class Failed(Exception):
    """Raise to say the operator cannot go on (the host treats it like a crash of the instance)."""


def _bytes(data, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


def _ttl(ttl) -> Optional[int]:
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        ttl = int(ttl.total_seconds() * 1000)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of milliseconds or a timedelta, not {ttl!r}")
    return ttl


# One encoder for every event (json.dumps with options builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def dumps(value) -> bytes:
    """Compact JSON, UTF-8, no NaN or infinities (they are not JSON)."""
    return _encode(value).encode()


class State:
    """The keyed state of one key (the event's, or the timer's). Values are bytes (str is
    encoded as UTF-8); `get_json`/`put_json` store JSON. `ttl`: milliseconds (or a timedelta) of
    processing time after which the entry reads as absent."""

    __slots__ = ("_host", "key")

    def __init__(self, host, key: bytes):
        if not key:
            raise Reject("the event has no key; give the operator `key-by:` to use keyed state")
        self._host = host
        self.key = key

    def get(self, name: str) -> Optional[bytes]:
        return self._host.value_get(self.key, name)

    def put(self, name: str, value, ttl=None) -> None:
        self._host.value_put(self.key, name, _bytes(value, "a state value"), _ttl(ttl))

    def delete(self, name: str) -> None:
        self._host.value_delete(self.key, name)

    def get_json(self, name: str, default=None):
        raw = self.get(name)
        return default if raw is None else json.loads(raw)

    def put_json(self, name: str, value, ttl=None) -> None:
        self.put(name, dumps(value), ttl)

    def map_get(self, name: str, map_key) -> Optional[bytes]:
        return self._host.map_get(self.key, name, _bytes(map_key, "a map key"))

    def map_put(self, name: str, map_key, value, ttl=None) -> None:
        self._host.map_put(self.key, name, _bytes(map_key, "a map key"), _bytes(value, "a state value"), _ttl(ttl))

    def map_delete(self, name: str, map_key) -> None:
        self._host.map_delete(self.key, name, _bytes(map_key, "a map key"))

    def map_range(self, name: str, start=b"", end=b"", limit: int = 1 << 16) -> list:
        """Entries with start <= map key < end (empty end: unbounded), in key order."""
        return self._host.map_range(self.key, name, _bytes(start, "start"), _bytes(end, "end"), limit)


class Timers:
    """The timers of one key, and the operator's clocks (milliseconds since the epoch)."""

    __slots__ = ("_host", "key")

    def __init__(self, host, key: bytes):
        self._host = host
        self.key = key

    def register(self, at: int, domain: str = EVENT_TIME) -> None:
        """Call the `@flowlet.on_timer` function for this key once the watermark (event time)
        or the clock (processing time) reaches `at`."""
        if domain not in DOMAINS:
            raise ValueError(f"domain must be {EVENT_TIME!r} or {PROCESSING_TIME!r}, not {domain!r}")
        if not self.key:
            raise Reject("the event has no key; give the operator `key-by:` to use timers")
        self._host.register(self.key, domain, int(at))

    def cancel(self, at: int, domain: str = EVENT_TIME) -> None:
        if domain not in DOMAINS:
            raise ValueError(f"domain must be {EVENT_TIME!r} or {PROCESSING_TIME!r}, not {domain!r}")
        self._host.cancel(self.key, domain, int(at))

    def watermark(self) -> int:
        return self._host.current_watermark()

    def now(self) -> int:
        return self._host.current_processing_time()


class Event:
    """One input event. `value` is its bytes, `text` its UTF-8 text, `json` its parsed JSON
    (parsed on first use, then kept); `key` is None when the event has no key."""

    __slots__ = ("_batch", "index", "_start", "_end", "_json", "_host", "_key", "input")

    def __init__(self, batch, index: int, start: int, end: int, host=None, key=None, input=""):
        self._batch = batch
        self.index = index
        self._start = start
        self._end = end
        self._json = _UNSET
        self._host = host
        self._key = key  # the key's bytes when the caller sliced them already
        # The input the event came from, as the manifest's `inputs:` names it.
        self.input = input

    @property
    def value(self) -> bytes:
        return self._batch.values[self._start:self._end]

    @property
    def text(self) -> str:
        try:
            return self.value.decode()
        except UnicodeDecodeError as e:
            raise Reject(f"the value is not UTF-8 ({e.reason} at byte {e.start})") from None

    @property
    def json(self):
        if self._json is _UNSET:
            try:
                self._json = json.loads(self.value.decode())
            except UnicodeDecodeError as e:
                raise Reject(f"the value is not UTF-8 ({e.reason} at byte {e.start})") from None
            except ValueError as e:
                raise Reject(f"the value is not JSON ({e})") from None
        return self._json

    @property
    def object(self) -> dict:
        """The value as a JSON object (a dict); any other value refuses the event with "the
        value is not a JSON object"."""
        try:
            value = self.json
        except Reject:
            value = None
        if not isinstance(value, dict):
            raise Reject("the value is not a JSON object")
        return value

    @property
    def key(self) -> Optional[bytes]:
        k = self._key
        if k is None:
            b, i = self._batch, self.index
            k = self._key = b.keys[b.key_ends[i - 1] if i else 0:b.key_ends[i]]
        return k or None

    @property
    def key_text(self) -> Optional[str]:
        k = self.key
        return None if k is None else k.decode("utf-8", "replace")

    @property
    def timestamp(self) -> int:
        return self._batch.timestamps[self.index]

    @property
    def headers(self) -> list:
        """[(name, value bytes)] of this event, in order."""
        return [(h.name, h.value) for h in self._batch.headers if h.event == self.index]

    @property
    def state(self) -> State:
        if self._host is None or not hasattr(self._host, "value_get"):
            raise Failed("keyed state needs @flowlet.stateful (the stateful-processor world)")
        return State(self._host, self.key or b"")

    @property
    def timers(self) -> Timers:
        if self._host is None or not hasattr(self._host, "register"):
            raise Failed("timers need @flowlet.stateful (the stateful-processor world)")
        return Timers(self._host, self.key or b"")

    def __repr__(self) -> str:
        return f"Event(index={self.index}, key={self.key!r}, timestamp={self.timestamp}, value={self.value!r})"


_UNSET = object()


MAIN_ROUTE = 1
# Route bits by output name: "main" and the operator's `outputs:` (set at init).
_ports: dict = {"main": MAIN_ROUTE}


def set_outputs(outputs) -> None:
    _ports.clear()
    _ports["main"] = MAIN_ROUTE
    for i, name in enumerate(outputs):
        _ports[name] = 1 << (i + 1)


def _route(to) -> int:
    names = [to] if isinstance(to, str) else list(to)
    mask = 0
    for name in names:
        bit = _ports.get(name)
        if bit is None:
            declared = ", ".join(n for n in _ports if n != "main") or "none"
            raise Failed(f"no output {name!r}: add it to the operator's `outputs:` in the manifest (it has: {declared})")
        mask |= bit
    if not mask:
        raise Failed("`to` names no output")
    return mask


class Output:
    """Where an operator emits events. Built column-wise in one pass, as the host reads it."""

    __slots__ = ("values", "value_ends", "keys", "key_ends", "timestamps", "headers", "routes", "_key", "_ts", "_event")

    def __init__(self):
        self.values = bytearray()
        self.value_ends: list = []
        self.keys = bytearray()
        self.key_ends: list = []
        self.timestamps: list = []
        self.headers: list = []  # (event index, name, value)
        # Route masks up to the last event sent elsewhere than the main output; [] while none is.
        self.routes: list = []
        self._key = b""
        self._ts = 0
        self._event: Optional[Event] = None

    def finished_routes(self) -> list:
        """One route mask per event, or [] when every event goes to the main output."""
        r = self.routes
        if r and len(r) < len(self.value_ends):
            r.extend([MAIN_ROUTE] * (len(self.value_ends) - len(r)))
        return r

    def emit(self, value, key=None, timestamp: Optional[int] = None, headers: Iterable = (), to=None) -> None:
        """Emit one event. `value`: bytes, str, or anything JSON can hold (a dict, a list, a
        number…); `key` and `timestamp` default to the input event's (or the window's/timer's);
        `to`: a named output (one of the manifest's `outputs:`, or "main"), or a list of them
        (the event goes to each); default the main output."""
        if to is not None:
            mask = _route(to)
            n = len(self.value_ends)
            r = self.routes
            if len(r) < n:
                r.extend([MAIN_ROUTE] * (n - len(r)))
            r.append(mask)
        if isinstance(value, (dict, list)):
            self.values += _encode(value).encode()
        elif isinstance(value, (bytes, bytearray, memoryview)):
            self.values += value
        elif isinstance(value, str):
            self.values += value.encode()
        else:
            self.values += _encode(value).encode()
        self.value_ends.append(len(self.values))
        self.keys += self._key if key is None else _bytes(key, "a key")
        self.key_ends.append(len(self.keys))
        self.timestamps.append(self._ts if timestamp is None else int(timestamp))
        if headers:
            at = len(self.value_ends) - 1
            for name, hv in headers:
                self.headers.append((at, name, _bytes(hv, "a header value")))

    def forward(self, to=None) -> None:
        """Emit the input event unchanged (value, key, timestamp and headers), to the main
        output or to `to` (as in `emit`)."""
        e = self._event
        if e is None:
            raise Failed("forward() is only for process(): there is no input event here")
        self.emit(e.value, e.key or b"", e.timestamp, e.headers, to)

    # The SDK's own bookkeeping: a roll-back to the mark taken before an event that failed.
    def _roll_back(self, mark) -> None:
        n, h = mark
        del self.value_ends[n:], self.key_ends[n:], self.timestamps[n:], self.headers[h:], self.routes[n:]
        del self.values[self.value_ends[-1] if n else 0:]
        del self.keys[self.key_ends[-1] if n else 0:]


def reason_of(e: BaseException) -> str:
    """A rejection's reason: the message of a Reject, "Type: message" of anything else."""
    if isinstance(e, Reject):
        return str(e) or "rejected"
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def process_batch(batch, fn: Callable, host, origin: str = "") -> tuple:
    """Run `fn(event, out)` over every event of `batch`, which came from input `origin`;
    (output, [(index, reason)])."""
    out = Output()
    out_ends = out.value_ends
    rejected = []
    value_ends = batch.value_ends
    key_ends = batch.key_ends
    keys = batch.keys
    timestamps = batch.timestamps
    start = kstart = 0
    for i, end in enumerate(value_ends):
        kend = key_ends[i]
        key = keys[kstart:kend]
        event = Event(batch, i, start, end, host, key, origin)
        out._key = key
        out._ts = timestamps[i]
        out._event = event
        start, kstart = end, kend
        mark = len(out_ends), len(out.headers)
        try:
            fn(event, out)
        except Failed:
            raise
        except Exception as e:  # one bad event must not cost the batch
            out._roll_back(mark)
            rejected.append((i, reason_of(e)))
    out._event = None
    return out, rejected


class Timer:
    """A timer that fired: its key, domain ("event-time" or "processing-time") and time, with
    the key's `state` and `timers`."""

    __slots__ = ("key", "domain", "at", "_host")

    def __init__(self, key: bytes, domain: str, at: int, host):
        self.key, self.domain, self.at, self._host = key, domain, at, host

    @property
    def key_text(self) -> str:
        return self.key.decode("utf-8", "replace")

    @property
    def state(self) -> State:
        return State(self._host, self.key)

    @property
    def timers(self) -> Timers:
        return Timers(self._host, self.key)

    def __repr__(self) -> str:
        return f"Timer(key={self.key!r}, domain={self.domain!r}, at={self.at})"


def fire_timers(timers: list, fn: Optional[Callable], host) -> Output:
    """Run `fn(timer, out)` for each fired (key, domain, at), in order."""
    out = Output()
    if fn is None:
        return out
    for key, domain, at in timers:
        out._key, out._ts = key, at
        fn(Timer(key, domain, at, host), out)
    return out


class Window:
    """A window that fired: [start, end) in milliseconds, its key (None for a window over all
    events) and `firing`: 0 on time, 1, 2, … when late events update it."""

    __slots__ = ("start", "end", "key", "firing")

    def __init__(self, start: int, end: int, key: Optional[bytes], firing: int = 0):
        self.start, self.end, self.key, self.firing = start, end, key or None, firing

    @property
    def key_text(self) -> Optional[str]:
        return None if self.key is None else self.key.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"Window(start={self.start}, end={self.end}, key={self.key!r}, firing={self.firing})"


class JsonCodec:
    """Accumulators as JSON (the default): dicts, lists, numbers, strings."""

    @staticmethod
    def encode(acc) -> bytes:
        return json.dumps(acc, separators=(",", ":"), ensure_ascii=False).encode()

    @staticmethod
    def decode(data: bytes):
        return json.loads(data)


class PickleCodec:
    """Accumulators as pickles: any picklable object (sets, tuples, your classes)."""

    @staticmethod
    def encode(acc) -> bytes:
        return pickle.dumps(acc, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def decode(data: bytes):
        return pickle.loads(data)


def _snapshot(acc):
    """What to restore when `add` fails after changing the accumulator in place: nothing for
    immutable values, a copy of a flat dict/list/set, a deep copy of anything else."""
    if acc is None or isinstance(acc, (int, float, str, bytes, tuple, frozenset)):
        return acc
    if isinstance(acc, (dict, list, set)):
        items = acc.values() if isinstance(acc, dict) else acc
        if not any(isinstance(v, (dict, list, set, bytearray)) for v in items):
            return acc.copy()
    return copy.deepcopy(acc)


class Aggregation:
    """An `@flowlet.aggregate` class instance driven batch by batch."""

    def __init__(self, instance, codec):
        self.op = instance
        self.codec = codec

    def create(self) -> bytes:
        return self.codec.encode(self.op.create())

    def add(self, accs: list, batch, slots, host) -> tuple:
        """Fold the events of `batch` into the decoded accumulators `accs` (a list, changed in
        place); [(index, reason)] of the events refused."""
        rejected = []
        add = self.op.add
        start = 0
        for i, end in enumerate(batch.value_ends):
            event = Event(batch, i, start, end, host)
            start = end
            s = slots[i]
            before = _snapshot(accs[s])
            try:
                result = add(accs[s], event)
                if result is not None:
                    accs[s] = result
            except Failed:
                raise
            except Exception as e:
                accs[s] = before
                rejected.append((i, reason_of(e)))
        return rejected

    def merge(self, a: bytes, b: bytes) -> bytes:
        return self.codec.encode(self.op.merge(self.codec.decode(a), self.codec.decode(b)))

    def finish(self, windows: Iterable) -> Output:
        """`windows`: (Window, accumulator bytes). Output key: the window's; time: end - 1."""
        out = Output()
        for window, acc in windows:
            out._key, out._ts = window.key or b"", window.end - 1
            try:
                self.op.finish(self.codec.decode(acc), window, out)
            except Exception as e:
                raise Failed(f"finish of {window}: {reason_of(e)}") from e
        return out
