"""flowlet — operators for the flowlet stream processor, in Python.

    import flowlet

    @flowlet.processor
    def process(event: flowlet.Event, out: flowlet.Output):
        if event.json["amount"] >= 100:
            out.emit(event.json | {"tier": "high"})

Build the module into a component with componentize-py (`componentize-py -d wit -w processor
componentize app -o op.wasm`, with this package on the path) and name it in a manifest; test it
without Wasm with `flowlet.testing.Harness`. See README.md.

- `@flowlet.processor` — `process(event, out)` for every event (world `processor`);
- `@flowlet.stateful` — the same with `event.state` (keyed state) and `event.timers`, plus an
  optional `@flowlet.on_timer` function `(timer, out)` (world `stateful-processor`);
- `@flowlet.aggregate` — a class with `create()`, `add(acc, event)`, `merge(a, b)` and
  `finish(acc, window, out)`; the host keeps the windows (world `aggregator`);
- `@flowlet.init` — an optional `(config)` function run once, before any event; raise
  `flowlet.InvalidConfig("…")` to refuse the config (`flowlet.settings` checks the usual cases).

Raise `flowlet.Reject("reason")` to refuse one event; any other exception refuses that event too
(with the exception's type and message) and the rest of the batch goes on.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any, Callable, Optional

from ._core import (
    EVENT_TIME,
    PROCESSING_TIME,
    Event,
    Failed,
    InvalidConfig,
    JsonCodec,
    Output,
    PickleCodec,
    Reject,
    State,
    Timer,
    Timers,
    Window,
)

__version__ = "0.2.0"
#: The contract (WIT package flowlet:operator) this SDK implements.
CONTRACT = "0.2.0"

__all__ = [
    "EVENT_TIME", "PROCESSING_TIME", "Event", "Failed", "InvalidConfig", "Output", "Reject",
    "Setup", "State", "Timer", "Timers", "Window", "aggregate", "config", "init", "log", "metrics",
    "on_timer", "processor", "settings", "setup", "stateful",
]

#: The operator's `config:` from the manifest (a dict; empty when absent), set before `init`.
config: dict = {}


class Setup:
    """Where the operator sits in the topology: its name, its inputs (what `event.input` is one
    of) and its named outputs (what `out.emit(..., to=NAME)` may name)."""

    def __init__(self, operator: str = "operator", inputs=("input",), outputs=()):
        self.operator = operator
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    def __repr__(self) -> str:
        return f"Setup(operator={self.operator!r}, inputs={self.inputs!r}, outputs={self.outputs!r})"


#: The operator's setup, given by the host before `init`.
setup = Setup()


class Spec:
    """What one module declares: its world and its functions."""

    def __init__(self, module: str):
        self.module = module
        self.kind: Optional[str] = None  # "processor" | "stateful" | "aggregate"
        self.init: Optional[Callable] = None
        self.process: Optional[Callable] = None
        self.on_timer: Optional[Callable] = None
        self.aggregate: Optional[type] = None
        self.codec: Any = JsonCodec

    def set_kind(self, kind: str, what: str) -> None:
        if self.kind not in (None, kind):
            raise TypeError(f"{self.module}: {what} makes it a {kind} operator, but it is a {self.kind} already; "
                            "one operator per module")
        self.kind = kind


_specs: dict = {}


def spec_of(target) -> Spec:
    """The operator declared by a module, or by the module of a decorated function or class."""
    if isinstance(target, str):
        name = target
    elif inspect.ismodule(target):
        name = target.__name__
    else:
        name = target.__module__
    spec = _specs.get(name)
    if spec is None or spec.kind is None:
        raise TypeError(f"{name} declares no operator: decorate a function with @flowlet.processor or @flowlet.stateful, "
                        "or a class with @flowlet.aggregate")
    return spec


def _declare(fn, kind: Optional[str], what: str) -> Spec:
    module = fn.__module__
    spec = _specs.setdefault(module, Spec(module))
    if kind:
        spec.set_kind(kind, what)
    return spec


def _export(spec: Spec) -> None:
    from . import _component

    _component.install(sys.modules.get(spec.module), spec)


def processor(fn: Callable) -> Callable:
    """`fn(event, out)` runs for every event: a stateless operator (filter, map, enrich…)."""
    spec = _declare(fn, "processor", "@flowlet.processor")
    spec.process = fn
    _export(spec)
    return fn


def stateful(fn: Callable) -> Callable:
    """`fn(event, out)` with `event.state` and `event.timers` of the event's key (the operator
    needs `key-by:` in the manifest)."""
    spec = _declare(fn, "stateful", "@flowlet.stateful")
    spec.process = fn
    _export(spec)
    return fn


def on_timer(fn: Callable) -> Callable:
    """`fn(timer, out)` runs for every timer that fires (with `timer.state` of its key); output
    events default to the timer's key and time."""
    spec = _declare(fn, "stateful", "@flowlet.on_timer")
    spec.on_timer = fn
    _export(spec)
    return fn


def init(fn: Callable) -> Callable:
    """`fn(config)` runs once per instance, before any event, with the manifest's `config:` (a
    dict, empty when absent). Raise `InvalidConfig` to refuse it; `flowlet.config` holds it too."""
    spec = _declare(fn, None, "@flowlet.init")
    spec.init = fn
    return fn


def aggregate(cls=None, *, accumulator: str = "json"):
    """A window aggregate class: `__init__(self, config)` (or no argument), `create()`,
    `add(acc, event)` (return the new accumulator, or change it in place and return None),
    `merge(a, b)`, `finish(acc, window, out)`. Accumulators cross to the host as JSON, or as
    pickles with `accumulator="pickle"` (any picklable object)."""
    codecs = {"json": JsonCodec, "pickle": PickleCodec}
    if accumulator not in codecs:
        raise ValueError(f"accumulator must be one of {', '.join(codecs)}, not {accumulator!r}")

    def wrap(c):
        for method in ("create", "add", "merge", "finish"):
            if not callable(getattr(c, method, None)):
                raise TypeError(f"@flowlet.aggregate class {c.__name__} has no {method}() method")
        spec = _declare(c, "aggregate", "@flowlet.aggregate")
        spec.aggregate = c
        spec.codec = codecs[accumulator]
        _export(spec)
        return c

    return wrap(cls) if cls is not None else wrap


def configure(spec: Spec, text: str, given_setup: Optional[Setup] = None):
    """Run the operator's setup with the config's JSON text (and where it sits in the topology);
    the aggregate instance, if any."""
    from ._core import set_outputs

    global setup
    setup = given_setup or Setup()
    set_outputs(setup.outputs)
    try:
        given = json.loads(text)
    except ValueError as e:
        raise InvalidConfig(f"the config is not JSON: {e}") from None
    if given is None:
        given = {}
    _given[0] = given
    config.clear()
    if isinstance(given, dict):
        config.update(given)
    elif spec.init is None and not _takes_config(spec.aggregate):
        raise InvalidConfig(f"the config must be a map, not {type(given).__name__}")
    if spec.init is not None:
        spec.init(given)
    if spec.aggregate is not None:
        return spec.aggregate(given) if _takes_config(spec.aggregate) else spec.aggregate()
    return None


def _takes_config(cls) -> bool:
    if cls is None:
        return False
    try:
        return len(inspect.signature(cls).parameters) >= 1
    except (TypeError, ValueError):
        return False


_NUMBER = (int, float)
_given: list = [{}]  # the config as given, even when it is not a map


def settings(defaults: dict, given: Optional[dict] = None) -> dict:
    """`given` (default: `flowlet.config`) checked against `defaults`: every key must be one of
    the defaults' and have the same type (int and float are both numbers); absent keys take the
    default. Raises `InvalidConfig` naming the first bad key."""
    given = _given[0] if given is None else given
    if not isinstance(given, dict):
        raise InvalidConfig(f"the config must be a map ({', '.join(defaults)})")
    out = dict(defaults)
    for name, value in given.items():
        if name not in defaults:
            raise InvalidConfig(f'unknown setting "{name}" (expected {", ".join(defaults)})')
        want = defaults[name]
        if isinstance(want, bool) or not isinstance(want, _NUMBER):
            ok = isinstance(value, type(want)) or want is None
            kind = type(want).__name__
        else:
            ok = isinstance(value, _NUMBER) and not isinstance(value, bool)
            kind = "number"
        if not ok:
            article = "an" if kind[0] in "aeiou" else "a"
            raise InvalidConfig(f"`{name}` must be {article} {kind}")
        out[name] = value
    return out


class _Log:
    """Log lines into the host's log, tagged with the operator and instance."""

    def _emit(self, level: str, message: str) -> None:
        _host().log(level, str(message))

    def trace(self, message: str) -> None:
        self._emit("trace", message)

    def debug(self, message: str) -> None:
        self._emit("debug", message)

    def info(self, message: str) -> None:
        self._emit("info", message)

    def warn(self, message: str) -> None:
        self._emit("warn", message)

    def error(self, message: str) -> None:
        self._emit("error", message)


class _Metrics:
    """Operator metrics, exported by the host (per operator, summed over instances)."""

    def counter_add(self, name: str, delta: int = 1) -> None:
        if isinstance(delta, bool) or not isinstance(delta, int) or delta < 0:
            raise ValueError(f"counter {name!r}: delta must be a non-negative int, not {delta!r}")
        _host().counter_add(name, delta)

    def gauge_set(self, name: str, value: float) -> None:
        _host().gauge_set(name, float(value))


log = _Log()
metrics = _Metrics()


class _StderrHost:
    """Outside a component and a harness: logs to stderr, metrics dropped."""

    def log(self, level: str, message: str) -> None:
        print(f"[{level}] {message}", file=sys.stderr)

    def counter_add(self, name: str, delta: int) -> None:
        pass

    def gauge_set(self, name: str, value: float) -> None:
        pass


_HOST: list = [_StderrHost()]


def _host():
    return _HOST[0]
