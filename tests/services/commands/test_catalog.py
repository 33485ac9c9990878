"""The command table: who may send `set_tracking` and which arguments it takes."""

from __future__ import annotations

import pytest

from chelian.services.commands.catalog import (
    COMMANDS,
    DRIVER,
    GUEST,
    OWNER,
    PLATFORM,
    TRACKING_DEFAULT_DURATION_S,
    TRACKING_DEFAULT_INTERVAL_MS,
    ArgsError,
)

TRACK = COMMANDS["set_tracking"]


def test_set_tracking_fills_defaults_so_equal_requests_hash_equally():
    assert TRACK.normalise({}) == {"interval_ms": TRACKING_DEFAULT_INTERVAL_MS,
                                   "duration_s": TRACKING_DEFAULT_DURATION_S}
    assert TRACK.normalise({"interval_ms": 500, "duration_s": 0}) == {"interval_ms": 500, "duration_s": 0}


def test_only_the_owner_and_the_platform_may_track_a_car():
    assert [r for r in (OWNER, DRIVER, PLATFORM, GUEST) if TRACK.allows(r)] == [OWNER, PLATFORM]


@pytest.mark.parametrize("args,reason", [
    ({"interval_ms": 50}, "interval_ms must be between 100 and 60000, got 50"),
    ({"interval_ms": 120_000}, "interval_ms must be between 100 and 60000"),
    ({"interval_ms": 1.5}, "interval_ms must be a int, got float"),
    ({"duration_s": -1}, "duration_s must be between 0 and 86400, got -1"),
    ({"duration_s": 86_401}, "duration_s must be between 0 and 86400"),
    ({"duration_s": True}, "duration_s must be a int, got bool"),
    ({"rate_hz": 5}, "set_tracking takes no argument rate_hz"),
])
def test_bad_tracking_arguments_say_which_and_why(args, reason):
    with pytest.raises(ArgsError) as caught:
        TRACK.normalise(args)
    assert reason in str(caught.value)
