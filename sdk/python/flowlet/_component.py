"""The component side: the classes componentize-py exports, over the WIT bindings it generates
(`wit_world`). Outside a component build (tests, a plain interpreter) there are no bindings and
nothing is installed."""

from __future__ import annotations

from ._core import (
    EVENT_TIME,
    PROCESSING_TIME,
    Aggregation,
    Failed,
    InvalidConfig,
    Window,
    fire_timers,
    process_batch,
    reason_of,
)


def install(module, spec) -> None:
    """Put the export class of `spec`'s world into the user's module, where componentize-py
    looks for it (`Handler`, `StatefulHandler` or `Aggregate`)."""
    if module is None:
        return
    try:
        from wit_world import exports
        from wit_world.imports import types
    except ImportError:
        return  # not a component build
    host = _host()
    import flowlet

    flowlet._HOST[0] = host
    make = {"processor": _handler, "stateful": _stateful_handler, "aggregate": _aggregate}[spec.kind]
    name, cls = make(exports, types, spec, host)
    setattr(module, name, cls)


def _host():
    """The WIT imports of the world being built (state and timers only in stateful-processor)."""
    from wit_world.imports import log, metrics

    levels = {name: getattr(log.Level, name.upper()) for name in ("trace", "debug", "info", "warn", "error")}

    class Host:
        def log(self, level, message):
            log.log(levels[level], message)

        def counter_add(self, name, delta):
            metrics.counter_add(name, delta)

        def gauge_set(self, name, value):
            metrics.gauge_set(name, value)

    try:
        from wit_world.imports import state, timers
    except ImportError:
        return Host()
    domains = {EVENT_TIME: timers.TimeDomain.EVENT_TIME, PROCESSING_TIME: timers.TimeDomain.PROCESSING_TIME}
    # The WIT functions are the host's methods as they are: no wrapper per call.
    for name in ("value_get", "value_put", "value_delete", "map_get", "map_put", "map_delete", "map_range"):
        setattr(Host, name, staticmethod(getattr(state, name)))
    Host.register = staticmethod(lambda key, domain, at: timers.register(key, domains[domain], at))
    Host.cancel = staticmethod(lambda key, domain, at: timers.cancel(key, domains[domain], at))
    Host.current_watermark = staticmethod(timers.current_watermark)
    Host.current_processing_time = staticmethod(timers.current_processing_time)
    Host.domain_names = {v: k for k, v in domains.items()}
    return Host()


def _errors(types):
    from componentize_py_types import Err

    def invalid(e):
        return Err(types.Error_InvalidConfig(str(e) or "invalid config"))

    def failed(e):
        return Err(types.Error_Failed(reason_of(e)))

    return invalid, failed


def _batch(types, out):
    headers = [types.Header(event=i, name=n, value=v) for i, n, v in out.headers]
    return types.Batch(values=bytes(out.values), value_ends=out.value_ends, keys=bytes(out.keys),
                       key_ends=out.key_ends, timestamps=out.timestamps, headers=headers)


def _init(spec, config, setup, invalid, failed):
    import flowlet

    try:
        return flowlet.configure(spec, config, flowlet.Setup(setup.operator, setup.inputs, setup.outputs))
    except InvalidConfig as e:
        raise invalid(e) from None
    except Exception as e:
        raise failed(e) from None


def _process(types, spec, host, failed):
    fn = spec.process

    def process(self, input, origin):
        import flowlet

        inputs = flowlet.setup.inputs
        try:
            out, rejected = process_batch(input, fn, host, inputs[origin] if origin < len(inputs) else "")
        except Failed as e:
            raise failed(e) from None
        return types.Output(events=_batch(types, out), routes=out.finished_routes(),
                            rejected=[types.Rejection(event=i, reason=r) for i, r in rejected])

    return process


def _handler(exports, types, spec, host):
    invalid, failed = _errors(types)

    class Handler(exports.Handler):
        def init(self, config: str, setup) -> None:
            _init(spec, config, setup, invalid, failed)

        process = _process(types, spec, host, failed)

    return "Handler", Handler


def _stateful_handler(exports, types, spec, host):
    invalid, failed = _errors(types)

    class StatefulHandler(exports.StatefulHandler):
        def init(self, config: str, setup) -> None:
            _init(spec, config, setup, invalid, failed)

        process = _process(types, spec, host, failed)

        def on_timer(self, fired):
            fired = [(t.key, host.domain_names[t.domain], t.at) for t in fired]
            try:
                out = fire_timers(fired, spec.on_timer, host)
            except Exception as e:
                raise failed(e) from None
            return types.Output(events=_batch(types, out), routes=out.finished_routes(), rejected=[])

    return "StatefulHandler", StatefulHandler


def _aggregate(exports, types, spec, host):
    from wit_world.exports import aggregate

    invalid, failed = _errors(types)
    agg: list = [None]

    class Aggregate(exports.Aggregate):
        def init(self, config: str, setup) -> None:
            agg[0] = Aggregation(_init(spec, config, setup, invalid, failed), spec.codec)

        def create_accumulator(self) -> bytes:
            try:
                return agg[0].create()
            except Exception as e:
                raise failed(e) from None

        def add(self, accumulators, input, slots):
            a = agg[0]
            decode, encode = a.codec.decode, a.codec.encode
            data, ends = accumulators.bytes, accumulators.ends
            try:
                accs = [decode(data[s:e]) for s, e in zip([0, *ends], ends)]
                rejected = a.add(accs, input, slots, host)
                packed, out_ends = bytearray(), []
                for acc in accs:
                    packed += encode(acc)
                    out_ends.append(len(packed))
            except Exception as e:
                raise failed(e) from None
            return aggregate.Added(
                accumulators=aggregate.Accumulators(bytes=bytes(packed), ends=out_ends),
                rejected=[types.Rejection(event=i, reason=r) for i, r in rejected])

        def merge(self, a: bytes, b: bytes) -> bytes:
            try:
                return agg[0].merge(a, b)
            except Exception as e:
                raise failed(e) from None

        def finish(self, fired):
            accs, aends = fired.accumulators, fired.accumulator_ends
            keys, kends = fired.keys, fired.key_ends
            windows = []
            a0 = k0 = 0
            for i, (start, end) in enumerate(zip(fired.starts, fired.ends)):
                windows.append((Window(start, end, keys[k0:kends[i]], fired.firings[i]), accs[a0:aends[i]]))
                a0, k0 = aends[i], kends[i]
            try:
                out = agg[0].finish(windows)
            except Exception as e:
                raise failed(e) from None
            return _batch(types, out)

    return "Aggregate", Aggregate
