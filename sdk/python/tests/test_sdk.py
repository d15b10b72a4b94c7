"""The Python SDK through its harness: the same batch → functions → columns path as the
component, at the extremes of every input."""

import sys
import types
import pytest

import flowlet
from flowlet.testing import AggregateHarness, Harness, batch_of, event

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
_count = [0]


def operator(source: str):
    """A module holding one operator (the SDK allows one per module)."""
    _count[0] += 1
    name = f"op_{_count[0]}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec("import flowlet\n" + source, module.__dict__)
    return module


ECHO = operator("""
@flowlet.processor
def process(event, out):
    out.forward()
""")


def test_forward_keeps_value_key_timestamp_and_headers():
    h = Harness(ECHO)
    out = h.process([event(b"\x00\xff raw", key="k", timestamp=I64_MAX, headers=[("h", b"1"), ("g", "2")]),
                     event("", timestamp=I64_MIN), event({"a": 1})])
    assert out.values == [b"\x00\xff raw", b"", b'{"a":1}']
    assert out.keys == [b"k", None, None]
    assert out.timestamps == [I64_MAX, I64_MIN, 0]
    assert out.events[0].headers == [("h", b"1"), ("g", b"2")]
    assert out.events[1].headers == [] and out.rejected == []


def test_an_empty_batch_gives_an_empty_output():
    out = Harness(ECHO).process([])
    assert out.events == [] and out.rejected == []


def test_a_huge_value_passes_whole():
    big = b"x" * (8 << 20)
    assert Harness(ECHO).process([big]).values == [big]


EMITTER = operator("""
@flowlet.processor
def process(event, out):
    kind = event.json["emit"]
    if kind == "object":
        out.emit({"n": event.json["n"], "s": "café"})
    elif kind == "text":
        out.emit("plain text", key="other", timestamp=-5)
    elif kind == "bytes":
        out.emit(b"\\xfe\\xff", headers=[("trace", b"t1")])
    elif kind == "two-then-fail":
        out.emit(1)
        out.emit(2, headers=[("x", b"y")])
        raise ValueError("boom")
    elif kind == "nan":
        out.emit({"x": float("nan")})
    elif kind == "reject":
        raise flowlet.Reject("no thanks")
    elif kind == "none":
        pass
""")


def test_emit_encodes_objects_text_and_bytes_with_defaults_and_overrides():
    h = Harness(EMITTER)
    out = h.process([event({"emit": "object", "n": 2**70}, key="k", timestamp=7),
                     event({"emit": "text"}, key="k", timestamp=7),
                     event({"emit": "bytes"}, timestamp=9)])
    assert out.values == ['{"n":1180591620717411303424,"s":"café"}'.encode(), b"plain text", b"\xfe\xff"]
    assert out.keys == [b"k", b"other", None]
    assert out.timestamps == [7, -5, 9]
    assert out.events[2].headers == [("trace", b"t1")]


def test_a_failing_event_is_rejected_alone_and_its_partial_output_dropped():
    h = Harness(EMITTER)
    out = h.process([{"emit": "object", "n": 1}, {"emit": "two-then-fail"}, {"emit": "reject"},
                     {"emit": "nan"}, {"nope": 1}, b"\xff\xfe", "{", {"emit": "text"}])
    assert out.values == [b'{"n":1,"s":"caf\xc3\xa9"}', b"plain text"]
    assert [i for i, _ in out.rejected] == [1, 2, 3, 4, 5, 6]
    reasons = dict(out.rejected)
    assert reasons[1] == "ValueError: boom"
    assert reasons[2] == "no thanks"
    assert reasons[3].startswith("ValueError: Out of range float values are not JSON compliant")
    assert reasons[4] == "KeyError: 'emit'"
    assert reasons[5].startswith("the value is not UTF-8")
    assert reasons[6].startswith("the value is not JSON")
    assert out.events[0].headers == [] and out.events[1].headers == []


def test_the_json_value_is_parsed_once_and_only_when_read():
    m = operator("""
import json
calls = []
real = json.loads
@flowlet.processor
def process(event, out):
    if event.key == b"parse":
        event.json; event.json; event.object
    out.emit(event.value)
""")
    import flowlet._core as core
    calls = []
    real = core.json.loads
    h = Harness(m)
    core.json.loads = lambda data: calls.append(data) or real(data)
    try:
        out = h.process([event("not even json"), event('{"a":1}', key="parse")])
    finally:
        core.json.loads = real
    assert out.values == [b"not even json", b'{"a":1}']
    assert calls == ['{"a":1}']


def test_event_object_refuses_everything_but_objects():
    m = operator("""
@flowlet.processor
def process(event, out):
    out.emit(event.object)
""")
    out = Harness(m).process(["[1]", "1", "null", '"s"', "{", b"\xff", '{"deep":' * 50 + "1" + "}" * 50])
    assert [r for _, r in out.rejected] == ["the value is not a JSON object"] * 6
    assert len(out.values) == 1


def test_deeply_nested_json_is_rejected_not_a_crash():
    m = operator("""
@flowlet.processor
def process(event, out):
    out.emit(event.json)
""")
    out = Harness(m).process(["[" * 100_000 + "]" * 100_000, "[]"])
    assert out.values == [b"[]"]
    assert out.rejected[0][0] == 0 and "RecursionError" in out.rejected[0][1]


CONFIGURED = operator("""
seen = {}
@flowlet.init
def setup(config):
    seen.update(flowlet.settings({"limit": 10, "name": "x", "strict": False}))
@flowlet.processor
def process(event, out):
    out.emit({"limit": seen["limit"], "name": seen["name"], "raw": flowlet.config})
""")


def test_config_is_checked_and_handed_to_init():
    out = Harness(CONFIGURED, config={"limit": 2.5}).process([{}])
    assert out.json == [{"limit": 2.5, "name": "x", "raw": {"limit": 2.5}}]
    assert Harness(CONFIGURED).process([{}]).json[0]["limit"] == 10


@pytest.mark.parametrize("config, message", [
    ({"limt": 1}, 'unknown setting "limt" (expected limit, name, strict)'),
    ({"limit": "lots"}, "`limit` must be a number"),
    ({"limit": True}, "`limit` must be a number"),
    ({"name": 3}, "`name` must be a str"),
    ({"strict": 1}, "`strict` must be a bool"),
    ([1, 2], "the config must be a map (limit, name, strict)"),
])
def test_a_bad_config_names_the_setting(config, message):
    with pytest.raises(flowlet.InvalidConfig) as e:
        Harness(CONFIGURED, config=config)
    assert str(e.value) == message


def test_a_config_without_init_must_be_a_map():
    with pytest.raises(flowlet.InvalidConfig, match="the config must be a map, not list"):
        Harness(ECHO, config=[1])


DEDUPE = operator("""
from datetime import timedelta

@flowlet.stateful
def process(event, out):
    state = event.state
    if state.get("seen") is None:
        state.put("seen", "1", ttl=timedelta(seconds=1))
        state.map_put("log", event.timestamp.to_bytes(8, "big"), event.value)
        event.timers.register(event.timestamp + 100)
        event.timers.register(event.timers.now() + 50, flowlet.PROCESSING_TIME)
        out.forward()
    else:
        flowlet.metrics.counter_add("duplicates")
        flowlet.log.info(f"duplicate {event.key_text}")

@flowlet.on_timer
def fired(timer, out):
    entries = timer.state.map_range("log")
    out.emit({"key": timer.key_text, "domain": timer.domain, "at": timer.at, "entries": len(entries)})
""")


def test_keyed_state_ttl_and_timers():
    h = Harness(DEDUPE)
    out = h.process([event("1", key="a", timestamp=10), event("2", key="b", timestamp=20),
                     event("3", key="a", timestamp=30)])
    assert out.values == [b"1", b"2"]
    assert h.counters == {"duplicates": 1} and h.logs == [("info", "duplicate a")]
    assert h.state("a").get("seen") == b"1" and h.state("c").get("seen") is None
    assert h.state("a").map_range("log") == [((10).to_bytes(8, "big"), b"1")]
    assert h.timers() == [(b"a", "processing-time", 50), (b"b", "processing-time", 50),
                          (b"a", "event-time", 110), (b"b", "event-time", 120)]
    assert h.advance_watermark(109).json == []
    assert h.advance_watermark(I64_MAX).json == [
        {"key": "a", "domain": "event-time", "at": 110, "entries": 1},
        {"key": "b", "domain": "event-time", "at": 120, "entries": 1}]
    fired = h.set_processing_time(50)
    assert fired.keys == [b"a", b"b"] and fired.timestamps == [50, 50]
    h.set_processing_time(999)
    assert h.process([event("4", key="a")]).values == []
    h.set_processing_time(1000)  # the ttl ran out
    assert h.process([event("5", key="a")]).values == [b"5"]


def test_state_without_a_key_rejects_the_event():
    out = Harness(DEDUPE).process([event("1"), event("2", key="k")])
    assert out.values == [b"2"]
    assert out.rejected == [(0, "the event has no key; give the operator `key-by:` to use keyed state")]


def test_a_bad_ttl_or_domain_rejects_the_event():
    m = operator("""
@flowlet.stateful
def process(event, out):
    if event.json == 1: event.state.put("x", b"", ttl=-1)
    if event.json == 2: event.timers.register(5, "wall-clock")
    if event.json == 3: event.state.put("x", 3)
""")
    out = Harness(m).process([event(1, key="k"), event(2, key="k"), event(3, key="k")])
    assert [r.split(":")[0] for _, r in out.rejected] == ["ValueError", "ValueError", "TypeError"]


def test_state_needs_the_stateful_world():
    m = operator("""
@flowlet.processor
def process(event, out):
    event.state.get("x")
""")
    with pytest.raises(flowlet.Failed, match="@flowlet.stateful"):
        Harness(m).process([event(1, key="k")])


COUNT = operator("""
@flowlet.aggregate
class Count:
    def __init__(self, config):
        self.field = config.get("field", "n")
    def create(self):
        return {"count": 0, "sum": 0, "seen": []}
    def add(self, acc, event):
        acc["count"] += 1
        acc["seen"].append(event.json["i"])
        acc["sum"] += event.json[self.field]   # a missing field raises after the changes above
    def merge(self, a, b):
        return {"count": a["count"] + b["count"], "sum": a["sum"] + b["sum"], "seen": a["seen"] + b["seen"]}
    def finish(self, acc, window, out):
        out.emit({"key": window.key_text, "start": window.start, "end": window.end, **acc, "firing": window.firing})
""")


def test_an_aggregate_folds_merges_and_finishes():
    h = AggregateHarness(COUNT)
    acc = h.fold([{"i": 1, "n": 2}, {"i": 2}, {"i": 3, "n": 5}, "x"])
    assert h.value(acc) == {"count": 2, "sum": 7, "seen": [1, 3]}
    assert [i for i, _ in h.rejected] == [1, 3]
    assert h.rejected[0][1] == "KeyError: 'n'"
    both = h.merge(acc, h.fold([{"i": 9, "n": 1}]))
    assert h.value(both) == {"count": 3, "sum": 8, "seen": [1, 3, 9]}
    out = h.finish(both, start=0, end=10, key="k", firing=2)
    assert out.json == [{"key": "k", "start": 0, "end": 10, "count": 3, "sum": 8, "seen": [1, 3, 9], "firing": 2}]
    assert out.timestamps == [9] and out.keys == [b"k"]


def test_tumbling_windows_in_the_harness():
    h = AggregateHarness(COUNT, config={"field": "v"})
    out = h.tumbling([event({"i": 1, "v": 1}, key="a", timestamp=0), event({"i": 2, "v": 2}, key="b", timestamp=999),
                      event({"i": 3, "v": 3}, key="a", timestamp=1000), event({"i": 4}, key="a", timestamp=5)], size=1000)
    assert [(e["key"], e["start"], e["sum"]) for e in out.json] == [("a", 0, 1), ("b", 0, 2), ("a", 1000, 3)]
    assert out.rejected == [(3, "KeyError: 'v'")]


def test_a_pickled_accumulator_holds_any_object():
    m = operator("""
@flowlet.aggregate(accumulator="pickle")
class Distinct:
    def create(self):
        return set()
    def add(self, acc, event):
        acc.add(event.key)
    def merge(self, a, b):
        return a | b
    def finish(self, acc, window, out):
        out.emit(sorted(k.decode() for k in acc))
""")
    h = AggregateHarness(m)
    acc = h.fold([event(1, key="x"), event(2, key="y"), event(3, key="x")])
    assert h.value(acc) == {b"x", b"y"}
    assert h.finish(acc).json == [["x", "y"]]


def test_a_finish_that_fails_names_the_window():
    m = operator("""
@flowlet.aggregate
class Bad:
    def create(self): return 0
    def add(self, acc, event): return acc + 1
    def merge(self, a, b): return a + b
    def finish(self, acc, window, out): out.emit({"x": float("inf")})
""")
    h = AggregateHarness(m)
    with pytest.raises(flowlet.Failed, match="finish of Window.start=0, end=1"):
        h.finish(h.fold([1]))


def test_declaring_two_worlds_in_one_module_is_refused():
    with pytest.raises(TypeError, match="one operator per module"):
        operator("""
@flowlet.processor
def a(event, out): pass
@flowlet.stateful
def b(event, out): pass
""")


def test_an_aggregate_without_finish_is_refused():
    with pytest.raises(TypeError, match="has no finish"):
        operator("""
@flowlet.aggregate
class A:
    def create(self): return 0
    def add(self, acc, event): return acc
    def merge(self, a, b): return a
""")


def test_batches_are_packed_as_the_host_packs_them():
    b = batch_of([event("ab", key="k", timestamp=1), event(b"", timestamp=2), event({"x": 1}, key="kk")])
    assert b.values == b'ab{"x":1}' and b.value_ends == [2, 2, 9]
    assert b.keys == b"kkk" and b.key_ends == [1, 1, 3] and b.timestamps == [1, 2, 0]


ROUTE = operator("""
@flowlet.processor
def process(event, out):
    doc = event.json
    if "amount" not in doc:
        out.forward(to="invalid")
    elif doc["amount"] > 1000:
        out.emit({"input": event.input, **doc}, to=["large", "audit"])
    elif doc["amount"] < 0:
        out.emit(doc, to="nowhere")
    else:
        out.forward()
""")


def test_events_are_routed_to_named_outputs_and_told_their_input():
    h = Harness(ROUTE, inputs=["orders", "refunds"], outputs=["invalid", "large", "audit"])
    out = h.process([{"id": 1}, {"id": 2, "amount": 5}, {"id": 3, "amount": 5000}], input="refunds")
    assert [e.json for e in out.on("invalid")] == [{"id": 1}]
    assert [e.json for e in out.on("main")] == [{"id": 2, "amount": 5}]
    big = {"input": "refunds", "id": 3, "amount": 5000}
    assert [e.json for e in out.on("large")] == [big] and [e.json for e in out.on("audit")] == [big]
    assert out.routes == [2, 1, 4 | 8]
    with pytest.raises(ValueError):
        h.process([], input="nope")


def test_a_route_to_an_undeclared_output_fails_naming_it():
    h = Harness(ROUTE, outputs=["invalid", "large", "audit"])
    with pytest.raises(flowlet.Failed, match="no output 'nowhere'.*invalid, large, audit"):
        h.process([{"amount": -1}])


def test_routes_of_a_rejected_event_are_dropped_with_its_events():
    h = Harness(operator("""
@flowlet.processor
def process(event, out):
    out.forward(to="side")
    if event.json.get("bad"):
        raise flowlet.Reject("bad")
"""), outputs=["side"])
    out = h.process([{"a": 1}, {"bad": True}, {"a": 2}])
    assert out.routes == [2, 2] and out.rejected == [(1, "bad")]
