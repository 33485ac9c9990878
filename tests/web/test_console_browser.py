"""The console in a real headless Chromium against a real platform and two simulated cars.

What runs is what ships: `Platform` (embedded broker, ingest with the push hub, HTTP API and
console on free ports, a tmp data dir) and `Fleet` cars speaking MQTT. The browser signs in
through the form, sees the cars' markers appear and move on the map, opens a car's page,
sends it a lock command, and a second user who owns no car sees the empty state; a fleet
operator sees only the fleet's car, labelled with its fleet and owner.

Chromium comes from Debian (`apt-get install chromium`; scripts/test installs it when run as
root), never from `playwright install`. Without it the test skips with that reason.

A screenshot of the map is saved to the test's tmp dir and to test-artifacts/console-map.png.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from chelian.config import Settings
from chelian.runtime import Platform
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet import fleets
from chelian.services.fleet.sim_fleet import provision_fleet
from chelian.sim.commands import command_executors
from chelian.sim.fleet import Fleet, SimCarConfig
from tests.fixtures_brokers import free_port, wait_until

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -e '.[test]')")

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
PASSWORD = "correct horse battery"
ANA, BEN = "ana@example.com", "ben@example.com"
DOOR = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"


@pytest.fixture
def stack(tmp_path):
    if CHROMIUM is None:
        pytest.skip("no chromium binary (apt-get install chromium); the console's browser test needs one")
    settings = Settings.load(data_dir=tmp_path / "data", http_host="127.0.0.1", http_port=free_port(),
                             mqtt_host="127.0.0.1", mqtt_port=free_port())
    platform = Platform(settings).start()
    fleet = None
    try:
        sign_up(platform.engine, ANA, PASSWORD)
        sign_up(platform.engine, BEN, PASSWORD)
        creds = provision_fleet(platform.engine, ANA, 2, settings.car_mqtt_url)
        commands = command_executors(settings.data_dir)
        assert commands is not None, "the platform made no command-signing key"
        cars = [SimCarConfig.from_credentials(c) for c in creds]
        fleet = Fleet(cars, *settings.broker_host_port, rate_hz=2,
                      seq_path=settings.data_dir / "sim" / "seq.json", commands=commands)
        fleet.start()
        assert fleet.wait_connected(15), "the simulated cars did not connect"
        yield platform, fleet
    finally:
        if fleet is not None:
            fleet.stop()
        platform.stop()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def sign_in(page, url: str, email: str) -> None:
    page.goto(url + "/")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#console:not([hidden])")
    page.wait_for_function("document.querySelector('#conn').textContent === 'live'")


def marker_positions(page) -> dict[str, list[float]]:
    return page.evaluate("""() => Object.fromEntries([...window.chelianConsole.markers].map(
        ([vin, m]) => [vin, [m.getLatLng().lat, m.getLatLng().lng]]))""")


def send_until_it_succeeds(page, command: str, attempts: int = 6) -> None:
    """Click a command button until the car acknowledges success.

    A simulated car refuses `lock` while a door is open (people boarding or alighting, for up to
    6 s), as a real car does; the page must show that reason, and a later try must succeed.
    """
    for _ in range(attempts):
        page.click(f"[data-cmd={command}]")
        page.wait_for_function("['succeeded', 'failed', 'rejected', 'expired', 'error']"
                               ".includes(document.querySelector('#cmd-progress').dataset.status)",
                               timeout=30_000)
        if page.get_attribute("#cmd-progress", "data-status") == "succeeded":
            return
        shown = page.text_content("#cmd-progress")
        assert "a door is open" in shown, f"{command} failed for another reason: {shown!r}"
        page.wait_for_timeout(2_000)
    raise AssertionError(f"{command} did not succeed in {attempts} tries; last: {shown!r}")


def test_sign_in_watch_cars_move_open_one_and_lock_it(stack, browser, tmp_path):
    platform, fleet = stack
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(platform.api_url + "/")
    page.fill("#email", ANA)
    page.fill("#password", "wrong password")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "Wrong e-mail or password" in page.text_content("#login-error")

    sign_in(page, platform.api_url, ANA)
    page.wait_for_function("window.chelianConsole.markers.size === 2", timeout=20_000)
    first = marker_positions(page)
    assert set(first) == set(fleet.vins)
    moved = wait_until(lambda: any(marker_positions(page)[v] != first[v] for v in first), 30, interval=0.5)
    assert moved, "no car marker moved in 30 s"
    page.wait_for_timeout(1500)  # let the road layer and a few frames settle for the picture
    shot = tmp_path / "console-map.png"
    page.screenshot(path=str(shot))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    shutil.copy(shot, ARTIFACTS / "console-map.png")
    assert page.evaluate("window.chelianConsole.stats.updates") > 2
    assert page.locator("#fleet li").count() == 2

    vin = sorted(fleet.vins)[0]
    page.click(f"#fleet li[data-vin='{vin}']")
    page.wait_for_selector("#car-state table")
    assert "Speed" in page.text_content("#car-state")
    page.wait_for_selector("#chart svg, #chart p")
    for command, shown in (("unlock", "false"), ("lock", "true")):  # each acked; the door's state follows
        send_until_it_succeeds(page, command)
        page.wait_for_function(f"document.querySelector(\"#car-state tr[data-path='{DOOR}'] td.num\")"
                               f"?.textContent === '{shown}'", timeout=15_000)
    page.wait_for_selector("#car-commands .status.succeeded")
    page.screenshot(path=str(tmp_path / "console-car.png"), full_page=True)
    shutil.copy(tmp_path / "console-car.png", ARTIFACTS / "console-car.png")
    assert errors == []


def test_another_user_sees_none_of_these_cars(stack, browser):
    platform, fleet = stack
    page = browser.new_page(viewport={"width": 390, "height": 844})  # phone width
    sign_in(page, platform.api_url, BEN)
    time.sleep(2)  # several push intervals while ana's cars drive
    assert page.is_visible("#empty")
    assert "No cars yet" in page.text_content("#empty")
    assert page.evaluate("window.chelianConsole.cars.size") == 0
    html = page.content()
    assert not any(vin in html for vin in fleet.vins)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    page.screenshot(path=str(ARTIFACTS / "console-empty-phone.png"))


def test_an_operator_sees_the_fleet_car_with_its_fleet_and_owner(stack, browser):
    platform, fleet = stack
    ops, vin = "ops@example.com", sorted(fleet.vins)[0]
    sign_up(platform.engine, ops, PASSWORD)
    fleets.create_fleet(platform.engine, "north")
    fleets.add_vehicles(platform.engine, "north", [vin])
    fleets.add_operator(platform.engine, "north", ops)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, platform.api_url, ops)
    page.wait_for_function("window.chelianConsole.markers.size === 1", timeout=20_000)
    assert list(marker_positions(page)) == [vin]  # ana's other car is not in the fleet
    page.wait_for_selector(f"#fleet li[data-vin='{vin}'] .via:not(:empty)")
    assert page.text_content(f"#fleet li[data-vin='{vin}'] .via") == f"fleet north · owner {ANA}"
    assert page.text_content("#fleet-title") == "Your cars and fleets"
    assert errors == []
