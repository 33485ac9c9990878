"""Rules benchmark: ingest throughput with every detector on (crash, roadside, stolen and
unauthorised movement; geofences, speed/curfew, diagnostics and trips), beside the very same
run without them (1 000 cars, 10 000 geofences by default).

The MQTT leg is left out on purpose: messages are prepared in memory and driven through
`Processor.process` in batches of `--batch` (the ingest worker's unit of work) into a fresh
PostgreSQL database per run, so the ratio measures only what the detectors add to the
commit path; a broker would add the same cost to both runs and blur the ratio.

The fleet drives inside a 0.5 x 0.5 degree area that holds all 10 000 fences (circles of
100-800 m and polygons, owner-wide and per car), so every fix does meet fences near it.
Every car has a speed limit and a curfew rule, a maintenance plan, and reports a DTC list.
The last line is one JSON object with the figures.

    .venv/bin/python bench/rules.py --cars 1000 --geofences 10000 --messages 20
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from bench._common import postgres_database  # noqa: E402
from chelian.config import Settings  # noqa: E402
from chelian.events import EventBus  # noqa: E402
from chelian.ingest.batch import Inbound  # noqa: E402
from chelian.ingest.processor import Processor  # noqa: E402
from chelian.link.codec import encode_telemetry  # noqa: E402
from chelian.link.topics import telemetry_topic  # noqa: E402
from chelian.metrics import Metrics  # noqa: E402
from chelian.runtime import build_detectors  # noqa: E402
from chelian.signals import Catalog  # noqa: E402
from chelian.storage.db import make_engine, now_ms, upgrade  # noqa: E402
from chelian.storage.tables import users, vehicles  # noqa: E402
from chelian.storage.tables_rules import alert_rules, geofences, maintenance_plans  # noqa: E402
from chelian.vin import with_check_digit  # noqa: E402
from tests.factories import signals  # noqa: E402

LAT0, LON0, SPAN = 45.5, 4.5, 0.5
OWNERS = 100


def vins(n: int) -> list[str]:
    return [with_check_digit(f"1FTFW1ET0D{i:06d}"[:17].ljust(17, "0")) for i in range(n)]


def seed(engine, cars: list[str], fences: int, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    now = now_ms()
    with engine.begin() as conn:
        conn.execute(insert(users), [dict(id=i + 1, email=f"o{i}@bench", password_hash="x", created_ms=now)
                                     for i in range(OWNERS)])
        conn.execute(insert(vehicles), [dict(id=i + 1, vin=v, make="Ford", model="Focus", year=2020,
                                             owner_id=i % OWNERS + 1, created_ms=now)
                                        for i, v in enumerate(cars)])
        conn.execute(insert(alert_rules), [dict(vehicle_id=i + 1, speed_limit_kmh=60.0, curfew_start_min=0,
                                                curfew_end_min=300, timezone="Europe/Paris")
                                           for i in range(len(cars))])
        conn.execute(insert(maintenance_plans), [dict(vehicle_id=i + 1, name="oil", every_km=15_000.0,
                                                      every_days=365.0, last_done_km=0.0, last_done_ms=now)
                                                 for i in range(len(cars))])
        rows = []
        for i in range(fences):
            lat, lon = LAT0 + rng.uniform(0, SPAN), LON0 + rng.uniform(0, SPAN)
            owner = rng.randrange(OWNERS) + 1
            # every third fence is bound to one of its owner's cars (car ids are owner-1 + k*OWNERS + 1)
            car = owner + OWNERS * rng.randrange(max(1, len(cars) // OWNERS)) if i % 3 == 0 else None
            base = dict(owner_id=owner, vehicle_id=car, name=f"f{i}", created_ms=now, center_lat=None,
                        center_lon=None, radius_m=None, geometry=None)
            if i % 5:
                rows.append(dict(base, kind="circle", center_lat=lat, center_lon=lon,
                                 radius_m=rng.uniform(100, 800)))
            else:
                d = rng.uniform(0.002, 0.01)
                ring = [[lon + d * math.cos(a), lat + d * math.sin(a)] for a in (0, 1.3, 2.6, 3.9, 5.2)]
                geometry = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
                rows.append(dict(base, kind="polygon", geometry=geometry))
        conn.execute(insert(geofences), rows)


def messages(cars: list[str], per_car: int, rng: random.Random) -> list[Inbound]:
    """Per car: ignition on, then a drive crossing the fence area; the last message turns it off."""
    start = now_ms() - per_car * 1000 - 60_000
    out = []
    for c, vin in enumerate(cars):
        lat, lon = LAT0 + rng.uniform(0, SPAN), LON0 + rng.uniform(0, SPAN)
        heading = rng.uniform(0, 2 * math.pi)
        topic = telemetry_topic(vin)
        for i in range(per_car):
            body = signals(i)
            lat += 25 * math.cos(heading) / 111_195
            lon += 25 * math.sin(heading) / (111_195 * math.cos(math.radians(lat)))
            body["Vehicle.CurrentLocation.Latitude"], body["Vehicle.CurrentLocation.Longitude"] = lat, lon
            body["Vehicle.Speed"] = 40.0 + (i * 7 + c) % 40 if i < per_car - 1 else 0.0  # parks at the end
            body["Vehicle.TraveledDistance"] = 10_000_000 + 25 * i
            body["Vehicle.LowVoltageSystemState"] = "OFF" if i == per_car - 1 else "ON"
            body["Vehicle.Acceleration.Longitudinal"] = rng.uniform(-2.5, 2.5)  # the crash rule's input
            body["Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"] = True  # the movement alarm's input
            if i % 10 == 0:
                body["Vehicle.Diagnostics.DTCList"] = ["P0301"] if (c + i) % 20 == 0 else []
            out.append(Inbound(c * per_car + i, 1, topic, encode_telemetry(i + 1, start + i * 1000, body),
                               start + i * 1000 + 50))
    # interleave cars the way a broker delivers them: round-robin by time
    out.sort(key=lambda m: (m.received_ms, m.mid))
    return out


def run(cars: list[str], fences: int, per_car: int, batch: int, with_rules: bool, seed_no: int) -> dict:
    rng = random.Random(seed_no)
    with postgres_database() as url:
        upgrade(url)
        engine = make_engine(url)
        seed(engine, cars, fences, rng)
        inbound = messages(cars, per_car, rng)
        settings = Settings.load(data_dir="/tmp/chelian-bench-rules", max_messages_per_s=1e9,
                                 max_message_burst=10**9)
        processor = Processor.from_settings(settings, engine, Catalog.builtin(), Metrics())
        bus, events = EventBus(), {}
        bus.subscribe("*", lambda e: events.__setitem__(e.name, events.get(e.name, 0) + 1))
        if with_rules:
            safety, rules = build_detectors(engine, bus, Catalog.builtin(), settings=settings)
            processor.observers.extend([*safety.observers, *rules.observers])
        stored = 0
        started = time.perf_counter()
        for i in range(0, len(inbound), batch):
            stored += processor.process(inbound[i:i + batch]).signals_stored
        seconds = time.perf_counter() - started
        engine.dispose()
    return {"signals_per_s": stored / seconds, "seconds": seconds, "signals": stored, "events": events}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cars", type=int, default=1000)
    ap.add_argument("--geofences", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=20, help="per car")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=2,
                    help="without/with pairs, interleaved; the best of each is kept (the machine is shared)")
    args = ap.parse_args()
    cars = vins(args.cars)
    withouts, withs = [], []
    for _ in range(args.repeat):
        withouts.append(run(cars, args.geofences, args.messages, args.batch, False, 1))
        last = withouts[-1]
        print(f"without rules {last['signals_per_s']:>10,.0f} signals/s ({last['seconds']:.1f} s)",
              flush=True)
        withs.append(run(cars, args.geofences, args.messages, args.batch, True, 1))
        print(f"with rules    {withs[-1]['signals_per_s']:>10,.0f} signals/s ({withs[-1]['seconds']:.1f} s)  "
              f"events: {withs[-1]['events']}", flush=True)
    without = max(withouts, key=lambda r: r["signals_per_s"])
    with_rules = max(withs, key=lambda r: r["signals_per_s"])
    ratio = with_rules["signals_per_s"] / without["signals_per_s"]
    print(f"ratio with/without (best of {args.repeat} each): {ratio:.2f} "
          "(MQTT leg left out: Processor.process on PostgreSQL)")
    print(json.dumps({
        "with_rules_signals_per_s": round(with_rules["signals_per_s"]),
        "without_rules_signals_per_s": round(without["signals_per_s"]), "ratio": round(ratio, 3),
        "cars": args.cars, "geofences": args.geofences, "messages_per_car": args.messages,
        "batch": args.batch, "repeat": args.repeat, "events": with_rules["events"], "mqtt": False,
        "database": "postgresql"}))


if __name__ == "__main__":
    main()
