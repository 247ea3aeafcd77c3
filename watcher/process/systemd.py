"""``sd_notify`` without libsystemd: tell systemd we are ready, alive, reloading or stopping.

systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for a socket in the abstract
namespace) to a ``Type=notify`` service; each notification is one datagram of ``KEY=value``
lines. Without ``NOTIFY_SOCKET`` (a terminal, a container) every call is a cheap no-op, so the
daemon calls them unconditionally.

The watchdog (``WatchdogSec=``) must only be fed while the scheduler makes progress: ``Watchdog``
pings at half the interval, and only when its ``alive()`` check (``Health.liveness().ok``)
passes, so a stuck scheduler gets the service restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

log = logging.getLogger("watcher.process.systemd")


def _address(path: str) -> str | None:
    if path.startswith("@"):
        return "\0" + path[1:]
    if path.startswith("/"):
        return path
    return None


class Notify:
    """A connection to systemd's notification socket (or a no-op when there is none).

    Methods return ``True`` when the message was sent. A failure to send is logged, never
    raised: losing a notification must not take the daemon down.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = env.get("NOTIFY_SOCKET") or None
        self._address = _address(self.socket_path) if self.socket_path else None
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        if self.socket_path and self._address is None:
            # vsock: addresses (systemd 253+, for VMs) are not used for services on a host.
            log.warning(
                "NOTIFY_SOCKET %r is not a unix socket path; systemd notifications are off", self.socket_path
            )

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=value`` lines."""
        if self._address is None:
            return False
        payload = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.sendto(payload, self._address)
            except OSError as exc:
                log.warning("sd_notify to %s failed: %s", self.socket_path, exc)
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) finished: systemd marks the unit active."""
        return self.send("READY=1", f"STATUS={status}") if status else self.send("READY=1")

    def reloading(self) -> bool:
        """A reload started; call ``ready()`` when it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown started (systemd then waits up to ``TimeoutStopSec``)."""
        return self.send("STOPPING=1", f"STATUS={status}") if status else self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self.send(f"STATUS={text.splitlines()[0] if text else ''}")

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> timedelta | None:
    """The watchdog timeout systemd set for this process (``WatchdogSec=``), or ``None``.

    ``None`` when ``WATCHDOG_USEC`` is unset, invalid, or ``WATCHDOG_PID`` names another process
    (the variables were inherited from a parent).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner.strip() != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(raw)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("ignoring WATCHDOG_USEC=%r: not a positive number of microseconds", raw)
        return None
    return timedelta(microseconds=usec)


class Watchdog:
    """Feeds the systemd watchdog from a thread, only while ``alive()`` is true.

    Pings every half ``interval`` (what ``sd_watchdog_enabled(3)`` recommends). ``start()`` is a
    no-op when there is no interval or no notify socket.
    """

    def __init__(self, notify: Notify, alive: Callable[[], bool], interval: timedelta | None) -> None:
        self.notify = notify
        self.alive = alive
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._starving = False

    def start(self) -> bool:
        if self.interval is None or not self.notify.enabled or self._thread is not None:
            return False
        self._thread = threading.Thread(target=self._run, name="watcher-watchdog", daemon=True)
        self._thread.start()
        return True

    def beat(self) -> bool:
        """One check: ping if alive. Returns whether a ping was sent."""
        if self.alive():
            if self._starving:
                log.info("scheduler is alive again; feeding the systemd watchdog")
                self._starving = False
            return self.notify.watchdog()
        if not self._starving:
            log.error("scheduler heartbeat is stale; no longer feeding the systemd watchdog")
            self._starving = True
        return False

    def _run(self) -> None:
        assert self.interval is not None
        period = self.interval.total_seconds() / 2
        while True:
            self.beat()
            if self._stop.wait(period):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
