from sqlalchemy import func, select

from chelian.services.retention.purge import purge_telemetry
from chelian.storage.db import now_ms
from chelian.storage.tables import rejected_messages, telemetry
from tests.factories import make_car, make_owner


def test_purge_deletes_only_old_rows_in_bounded_batches(engine):
    owner = make_owner(engine)
    cars = [make_car(engine, owner) for _ in range(2)]
    with engine.connect() as conn:
        ids = dict(conn.exec_driver_sql("SELECT vin, id FROM vehicles").all())
    now = now_ms()
    rows = [{"vehicle_id": ids[c.vin], "seq": i, "ts_ms": now - (100 - i) * 86_400_000 // 10,
             "received_ms": now, "signals": {"Vehicle.Speed": float(i)}} for c in cars for i in range(100)]
    with engine.begin() as conn:
        conn.execute(telemetry.insert(), rows)
        conn.execute(rejected_messages.insert(), [
            {"topic": "t", "vin": None, "reason": "malformed_json", "detail": "", "payload": b"x",
             "received_ms": now - 20 * 86_400_000},
            {"topic": "t", "vin": None, "reason": "malformed_json", "detail": "", "payload": b"y",
             "received_ms": now}])
    cutoff = now - 5 * 86_400_000  # rows older than 5 days go: seq 0..49 of each car
    report = purge_telemetry(engine, cutoff, batch_rows=7)
    assert report.telemetry_rows == 100 and report.rejected_rows == 1
    assert report.batches >= 100 // 7  # never one big delete
    with engine.connect() as conn:
        left = conn.execute(select(func.min(telemetry.c.ts_ms), func.count()).select_from(telemetry)).one()
        assert left[0] >= cutoff and left[1] == 100
        assert conn.execute(select(func.count()).select_from(rejected_messages)).scalar() == 1
    assert purge_telemetry(engine, cutoff, batch_rows=7).telemetry_rows == 0
