"""`chelian demo` as a user runs it: a real process, its printed login used over HTTP, the cars'
state changing within seconds, and a clean stop that leaves no child process behind."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures_brokers import free_port

CHELIAN = Path(sys.executable).parent / "chelian"
START_TIMEOUT_S = 90  # the machine is shared; a cold start (migrations, broker, fleet) is a few seconds
CONSOLE_RE = re.compile(r"^console\s+(http://\S+?)/?\s")
LOGIN_RE = re.compile(r"^login\s+(\S+@\S+) / (\S+)\s*$")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux /proc), children of children included."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for tasks in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = {int(p) for p in tasks.read_text().split()}
            except OSError:  # the task ended meanwhile
                continue
            todo += sorted(kids - found)
            found |= kids
    return found


def alive(pid: int) -> bool:
    """Running (or stopped), not gone and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Demo:
    def __init__(self, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHELIAN_")}
        env["PYTHONUNBUFFERED"] = "1"  # lines reach the pipe as they are printed
        self.http_port, self.mqtt_port = free_port(), free_port()
        cmd = [str(CHELIAN), "demo", "--data-dir", str(tmp_path / "data"),
               "--http-port", str(self.http_port), "--mqtt-port", str(self.mqtt_port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, cwd=tmp_path, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_login(self) -> tuple[str, str, str]:
        """(console URL, e-mail, password) as the demo prints them."""
        url = login = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while url is None or login is None:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"demo printed no console URL and login in {START_TIMEOUT_S}s:\n{self.text}")
            if line is None:
                pytest.fail(f"demo exited with {self.proc.wait()} before printing its login:\n{self.text}")
            if m := CONSOLE_RE.match(line):
                url = m.group(1)
            elif m := LOGIN_RE.match(line):
                login = (m.group(1), m.group(2))
        return url, *login

    @property
    def text(self) -> str:
        return "".join(self.output)

    def kill_leftovers(self) -> None:
        """Teardown after a failure: the demo's own process group (it was started in a new
        session), which also holds any child it failed to stop."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


@pytest.mark.slow
def test_demo_prints_a_login_whose_cars_move_and_stops_cleanly(tmp_path):
    demo = Demo(tmp_path)
    try:
        console_url, email, password = demo.wait_for_login()
        assert console_url == f"http://127.0.0.1:{demo.http_port}"
        children = descendants(demo.proc.pid)
        assert children, "the embedded broker should run as a child process of the demo"

        with httpx.Client(base_url=console_url, timeout=10) as http:
            token = http.post("/api/v1/auth/token", data={"username": email, "password": password})
            assert token.status_code == 200, token.text
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            vehicles = http.get("/api/v1/vehicles").json()["data"]
            assert len(vehicles) == 5
            vin = vehicles[0]["vin"]

            def state() -> dict:
                response = http.get(f"/api/v1/vehicles/{vin}/state")
                assert response.status_code == 200, response.text
                return {path: (s["value"], s["ts"]) for path, s in response.json()["signals"].items()}

            first = state()
            deadline = time.monotonic() + 10  # the issue: "within 10 s the cars' state changes"
            while (now := state()) == first and time.monotonic() < deadline:
                time.sleep(0.5)
            assert now != first, f"{vin}'s state did not change within 10 s: {first}"
            moved = [p for p in now if now[p] != first.get(p)]
            assert moved, now

        children |= descendants(demo.proc.pid)
        demo.proc.send_signal(signal.SIGINT)  # Ctrl-C, as the demo tells the user
        try:
            code = demo.proc.wait(10)  # about 1 s here; generous because the machine is shared
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo did not stop within 10 s of SIGINT:\n{demo.text}")
        time.sleep(0.2)  # let the reader thread take the last lines
        assert code == 0, demo.text
        assert "Traceback" not in demo.text, demo.text
        left = sorted(pid for pid in children if alive(pid))
        assert left == [], f"child processes left running after the demo stopped: {left}"
    finally:
        demo.kill_leftovers()
