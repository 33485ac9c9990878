from chelian.events import DomainEvent, EventBus


def event(name: str, key: str = "k") -> DomainEvent:
    return DomainEvent(name, vin="1M8GDM9AXKP042788", vehicle_id=1, ts_ms=0, key=key)


def test_subscribers_get_their_events_and_a_failing_one_does_not_stop_others():
    bus = EventBus()
    got, everything = [], []

    def broken(_e):
        raise RuntimeError("boom")

    bus.subscribe("crash_detected", broken)
    bus.subscribe("crash_detected", got.append)
    unsubscribe = bus.subscribe("*", everything.append)
    bus.publish(event("crash_detected"))
    bus.publish(event("geofence_exited"))
    assert [e.name for e in got] == ["crash_detected"]
    assert [e.name for e in everything] == ["crash_detected", "geofence_exited"]
    unsubscribe()
    bus.publish(event("geofence_exited"))
    assert len(everything) == 2
