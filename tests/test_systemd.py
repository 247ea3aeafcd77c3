"""sd_notify datagrams received on a unix socket the test creates, as systemd would."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from watcher.process.systemd import Notify, Watchdog, watchdog_interval


class Systemd:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, address: str, path: str) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(address)
        self.socket.settimeout(2)
        self.path = path  # what goes in NOTIFY_SOCKET

    def receive(self) -> str:
        return self.socket.recv(4096).decode()

    def nothing_pending(self) -> bool:
        self.socket.settimeout(0.05)
        try:
            self.socket.recv(4096)
        except TimeoutError:
            return True
        finally:
            self.socket.settimeout(2)
        return False


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    path = str(tmp_path / "notify.sock")
    receiver = Systemd(path, path)
    yield receiver
    receiver.socket.close()


@pytest.fixture
def abstract_systemd() -> Iterator[Systemd]:
    name = f"watcher-test-{uuid.uuid4().hex}"
    receiver = Systemd("\0" + name, "@" + name)
    yield receiver
    receiver.socket.close()


def test_ready_watchdog_status_stopping(systemd: Systemd) -> None:
    notify = Notify({"NOTIFY_SOCKET": systemd.path})
    assert notify.enabled
    assert notify.ready()
    assert systemd.receive() == "READY=1"
    assert notify.watchdog()
    assert systemd.receive() == "WATCHDOG=1"
    assert notify.status("4 rules, 1 source\nsecond line dropped")
    assert systemd.receive() == "STATUS=4 rules, 1 source"
    assert notify.stopping("flushing outbox")
    assert systemd.receive() == "STOPPING=1\nSTATUS=flushing outbox"
    notify.close()


def test_ready_with_status_and_reloading(systemd: Systemd) -> None:
    notify = Notify({"NOTIFY_SOCKET": systemd.path})
    notify.ready("watching 4 rules")
    assert systemd.receive() == "READY=1\nSTATUS=watching 4 rules"
    notify.reloading()
    lines = systemd.receive().split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    assert int(lines[1].split("=")[1]) > 0


def test_abstract_namespace_socket(abstract_systemd: Systemd) -> None:
    notify = Notify({"NOTIFY_SOCKET": abstract_systemd.path})
    assert notify.ready()
    assert abstract_systemd.receive() == "READY=1"


def test_reads_notify_socket_from_the_process_environment(
    systemd: Systemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.path)
    assert Notify().watchdog()
    assert systemd.receive() == "WATCHDOG=1"


def test_no_op_without_notify_socket() -> None:
    notify = Notify({})
    assert not notify.enabled
    assert not notify.ready()
    assert not notify.stopping()


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notify = Notify({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not notify.watchdog()
    assert f"sd_notify to {tmp_path / 'gone.sock'} failed" in caplog.text


def test_unsupported_socket_address(caplog: pytest.LogCaptureFixture) -> None:
    notify = Notify({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notify.enabled
    assert (
        "NOTIFY_SOCKET 'vsock:2:1234' is not a unix socket path; systemd notifications are off" in caplog.text
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, timedelta(seconds=30)),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, timedelta(seconds=30)),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: timedelta | None) -> None:
    assert watchdog_interval(environ) == expected


@pytest.mark.parametrize("raw", ["soon", "0", "-5"])
def test_invalid_watchdog_usec(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    assert watchdog_interval({"WATCHDOG_USEC": raw}) is None
    assert f"ignoring WATCHDOG_USEC={raw!r}: not a positive number of microseconds" in caplog.text


def test_watchdog_is_fed_only_while_alive(systemd: Systemd, caplog: pytest.LogCaptureFixture) -> None:
    alive = [True]
    watchdog = Watchdog(Notify({"NOTIFY_SOCKET": systemd.path}), lambda: alive[0], timedelta(seconds=1))
    assert watchdog.beat()
    assert systemd.receive() == "WATCHDOG=1"
    alive[0] = False
    assert not watchdog.beat()
    assert not watchdog.beat()
    assert systemd.nothing_pending()
    assert caplog.text.count("scheduler heartbeat is stale; no longer feeding the systemd watchdog") == 1
    alive[0] = True
    assert watchdog.beat()
    assert systemd.receive() == "WATCHDOG=1"


def test_watchdog_thread_pings_at_half_the_interval(systemd: Systemd) -> None:
    watchdog = Watchdog(Notify({"NOTIFY_SOCKET": systemd.path}), lambda: True, timedelta(milliseconds=100))
    assert watchdog.start()
    try:
        assert [systemd.receive() for _ in range(3)] == ["WATCHDOG=1"] * 3
    finally:
        watchdog.stop()


def test_watchdog_does_not_start_without_systemd() -> None:
    assert not Watchdog(Notify({}), lambda: True, timedelta(seconds=10)).start()
    assert not Watchdog(Notify({"NOTIFY_SOCKET": "/run/x"}), lambda: True, None).start()
