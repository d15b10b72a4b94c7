"""Unit tests of {{name}}, without Wasm: `make unit` (pytest)."""

import pytest

import app
import flowlet
from flowlet.testing import Harness, event


def test_labels_objects_and_refuses_the_rest():
    h = Harness(app, config={"label": "checked"})
    out = h.process([event({"id": 1}, key="k", timestamp=5), "[1, 2]"])
    assert out.json == [{"id": 1, "label": "checked"}]
    assert out.keys == [b"k"] and out.timestamps == [5]
    assert out.rejected == [(1, "the value is not a JSON object")]


def test_a_bad_config_is_refused():
    with pytest.raises(flowlet.InvalidConfig, match="`label` must be a str"):
        Harness(app, config={"label": 3})
