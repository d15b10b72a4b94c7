"""Unit tests of the window aggregate, without Wasm (`make test`)."""

import pytest

import app
import flowlet
from flowlet.testing import AggregateHarness, event


def test_sums_per_key_and_window_and_rejects_non_numbers():
    h = AggregateHarness(app, config={"function": "sum", "field": "/amount"})
    out = h.tumbling([
        event({"amount": 1.5}, key="a", timestamp=0),
        event({"amount": 2}, key="a", timestamp=999),
        event({"amount": "x"}, key="a", timestamp=10),
        event({"other": 1}, key="b", timestamp=10),
        event({"amount": 4}, key="b", timestamp=1000),
        event("nope", key="b", timestamp=1000),
    ], size=1000)
    # As in the host, a window whose events were all refused still fires (count 0).
    assert out.json == [
        {"key": "a", "start": 0, "end": 1000, "sum": 3.5, "count": 2},
        {"key": "b", "start": 0, "end": 1000, "sum": 0.0, "count": 0},
        {"key": "b", "start": 1000, "end": 2000, "sum": 4, "count": 1},
    ]
    assert out.timestamps == [999, 999, 1999]
    assert out.rejected == [(2, '/amount is not a number: "x"'), (3, "no field /amount"), (5, "the value is not JSON")]


def test_min_max_of_an_empty_window_are_null_and_late_firings_are_marked():
    h = AggregateHarness(app, config={"function": "min", "field": "/v", "output": "lowest"})
    assert h.finish(h.create(), start=0, end=10, key="k", firing=1).json == [
        {"key": "k", "start": 0, "end": 10, "lowest": None, "count": 0, "firing": 1}]
    merged = h.merge(h.fold([{"v": 3}, {"v": -2}]), h.fold([{"v": 7}]))
    assert h.finish(merged).json[0]["lowest"] == -2


@pytest.mark.parametrize("config, message", [
    ({"function": "median"}, "`function` must be one of count, sum, avg, min, max"),
    ({"function": "sum"}, "`sum` needs a `field`"),
    ({"function": "sum", "field": "amount"}, "is not a JSON pointer"),
    ({"function": "count", "output": "key"}, "would collide"),
    ({"function": "count", "colour": 1}, "unknown setting 'colour'"),
])
def test_a_bad_config_is_refused_with_the_reason(config, message):
    with pytest.raises(flowlet.InvalidConfig, match=message):
        AggregateHarness(app, config=config)
