"""Query parameter parsing shared by the routes."""

from __future__ import annotations

import pytest

from eventlog import EventLogError
from server.api.params import non_negative_int, wait_seconds


def test_query_parameters() -> None:
    assert non_negative_int({}, "from", 0) == 0
    assert non_negative_int({"from": "12"}, "from", 0) == 12
    for bad in ("-1", "1.0", " 1", "0x1", "²", "1" * 20):
        with pytest.raises(EventLogError):
            non_negative_int({"from": bad}, "from", 0)
    with pytest.raises(EventLogError):
        non_negative_int({"limit": "11"}, "limit", 1, maximum=10)
    assert wait_seconds({"wait": "2.5"}, 60) == 2.5
    assert wait_seconds({"wait": "5s"}, 60) == 5
    assert wait_seconds({"wait": "600"}, 60) == 60  # capped
    for bad in ("-0.1", "nan", "inf", "x", "١"):
        with pytest.raises(EventLogError):
            wait_seconds({"wait": bad}, 60)
