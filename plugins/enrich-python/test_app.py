"""Unit tests of the enrich operator, without Wasm (`make test`)."""

import pytest

import app
import flowlet
from flowlet.testing import Harness, event


def test_filters_enriches_and_rejects():
    h = Harness(app, config={"min-amount": 100, "high-amount": 1000})
    out = h.process([
        event({"amount": 100, "country": "US"}, key="k", timestamp=5),
        {"amount": 99.9, "country": "de"},
        {"amount": 750.5, "country": "xx", "tier": "old"},
        {"amount": 1000, "country": 49},
        "[1, 2]",
        {"amount": "12"},
        b"\xff",
    ])
    assert out.json == [
        {"amount": 100, "country": "US", "tier": "low", "region": "na"},
        {"amount": 750.5, "country": "xx", "tier": "low", "region": "other"},
        {"amount": 1000, "country": 49, "tier": "high", "region": "other"},
    ]
    assert out.keys[0] == b"k" and out.timestamps[0] == 5
    assert out.rejected == [(4, "the value is not a JSON object"), (5, "`amount` is missing or not a number"),
                            (6, "the value is not a JSON object")]


@pytest.mark.parametrize("config, message", [
    ({"min-amount": "lots"}, "`min-amount` must be a number"),
    ({"max": 1}, 'unknown setting "max" (expected min-amount, high-amount)'),
])
def test_a_bad_config_is_refused_with_the_reason(config, message):
    with pytest.raises(flowlet.InvalidConfig, match=message.replace("(", r"\(").replace(")", r"\)")):
        Harness(app, config=config)
