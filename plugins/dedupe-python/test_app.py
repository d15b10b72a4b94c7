"""Unit tests of the dedupe operator, without Wasm (`make test`)."""

import pytest

import app
import flowlet
from flowlet.testing import Harness, event


def test_drops_repeats_within_the_ttl_only():
    h = Harness(app, config={"ttl": "1s"})
    out = h.process([event("1", key="a"), event("2", key="b"), event("3", key="a")])
    assert out.values == [b"1", b"2"] and h.counters == {"duplicates": 1}
    h.set_processing_time(999)
    assert h.process([event("4", key="a")]).values == []
    h.set_processing_time(1000)
    assert h.process([event("5", key="a")]).values == [b"5"]


def test_an_event_without_a_key_is_rejected():
    out = Harness(app, config={"ttl": "1h30m"}).process(["x"])
    assert out.rejected == [(0, "the event has no key; give the dedupe operator `key-by:` the id field")]


@pytest.mark.parametrize("config, message", [
    ({"ttl": "soon"}, "not a duration"),
    ({"ttl": "10 parsecs"}, "not a duration"),
    ({"ttl": "0s"}, "longer than 0"),
    ({}, "`ttl` is missing"),
    ({"ttl": 10}, "`ttl` must be a str"),
])
def test_a_bad_ttl_is_refused_with_the_reason(config, message):
    with pytest.raises(flowlet.InvalidConfig, match=message):
        Harness(app, config=config)
