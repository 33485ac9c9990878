"""The notifier's memory of commands this process created: only for who asked, kept current by
notified changes, dropped when a change is not carried in full, bounded in time and size."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chelian.services.commands import notify
from chelian.services.commands.notify import RECENT_MS, Notifier

ME, STRANGER = ("token-a", "VIN1"), ("token-b", "VIN1")


@dataclass(frozen=True)
class Row:
    status: str
    reason: str | None = None


def test_only_the_asker_is_answered_and_only_until_it_lapses():
    notifier = Notifier()
    notifier.remember("c1", ME, Row("sent"), until_ms=1_000 + 5_000, now_ms=1_000)
    assert notifier.recall("c1", ME, 1_001) == Row("sent")
    assert notifier.recall("c1", STRANGER, 1_001) is None, "another token"
    assert notifier.recall("c1", ("token-a", "VIN2"), 1_001) is None, "another car"
    assert notifier.recall("c2", ME, 1_001) is None
    assert notifier.recall("c1", ME, 6_000) is None, "at its own expiry"


def test_a_long_lived_command_is_remembered_for_a_minute_at_most():
    notifier = Notifier()
    notifier.remember("c1", ME, Row("sent"), until_ms=10**12, now_ms=0)
    assert notifier.recall("c1", ME, RECENT_MS - 1) is not None
    assert notifier.recall("c1", ME, RECENT_MS) is None


def test_a_notified_change_is_applied_and_one_without_the_fields_forgets():
    notifier = Notifier()
    notifier.remember("c1", ME, Row("sent"), until_ms=60_000, now_ms=0)
    notifier.remember("c2", ME, Row("sent"), until_ms=60_000, now_ms=0)
    notifier.notify(["c1", "c2"], {"c1": {"status": "rejected", "reason": "replayed"}})
    assert notifier.recall("c1", ME, 1) == Row("rejected", "replayed")
    assert notifier.recall("c2", ME, 1) is None, "changed somehow: read it afresh"
    notifier.remember("c3", ME, Row("sent"), until_ms=60_000, now_ms=0)
    notifier.forget(["c3"])
    assert notifier.recall("c3", ME, 1) is None
    notifier.remember("c4", ME, Row("sent"), until_ms=60_000, now_ms=0)
    notifier.notify_all()
    assert notifier.recall("c4", ME, 1) is None, "wake-ups may have been lost"


def test_the_oldest_and_the_lapsed_make_room(monkeypatch):
    monkeypatch.setattr(notify, "MAX_RECENT", 3)
    notifier = Notifier()
    for n in range(4):
        notifier.remember(f"c{n}", ME, Row("sent"), until_ms=60_000, now_ms=n)
    assert [notifier.recall(f"c{n}", ME, 10) is not None for n in range(4)] == [False, True, True, True]
    notifier.remember("late", ME, Row("sent"), until_ms=60_000, now_ms=60_000)
    assert notifier._recent.keys() == {"late"}, "lapsed entries are pruned on the way in"


def test_a_waiter_registered_before_a_change_gets_the_change():
    async def scenario() -> tuple[bool, dict | None]:
        notifier = Notifier()
        notifier.remember("c1", ME, Row("sent"), until_ms=60_000, now_ms=0)
        with notifier.watch("c1") as watch:
            asyncio.get_running_loop().call_later(
                0.05, notifier.notify, ["c1"], {"c1": {"status": "succeeded"}})
            return await watch.wait(5), watch.take_change()

    assert asyncio.run(scenario()) == (True, {"status": "succeeded"})
