"""A real, throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, ``postgres``
on 127.0.0.1 with a free port, stopped (and the folder removed) at the end of the session.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the unprivileged
system user ``watcher-test`` (created with ``useradd`` if missing) through ``runuser``. Host
connections need a password (scram-sha-256), so the URLs the tests use carry a real secret, as a
production ``state.url`` does. Durability is off (``fsync``, ``synchronous_commit``): the tests
check what watcher commits, not the disk.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import psycopg

USER = "watcher-test"
PASSWORD = "pg-s3cret-in-url"


def find_initdb() -> Path | None:
    """``initdb`` on the PATH, else Debian's (``/usr/lib/postgresql/<version>/bin``), newest first."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve()
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version, reverse=True)
    return Path(candidates[0]) if candidates else None


def _version(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


@dataclass
class PostgresServer:
    process: subprocess.Popen[bytes]
    folder: Path
    port: int
    command: list[str]
    _names = count()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"watcher_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def halt(self) -> None:
        """Stop the server, keeping its data (an outage): a fast shutdown, which closes the clients'
        sessions at once (SIGTERM's smart shutdown would wait for them)."""
        pid = int((self.folder / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)
        self.process.wait(30)

    def resume(self) -> None:
        """Start the halted server again, on the same port and data."""
        self.process = _launch(self.command, self.folder)
        _wait(self)

    def stop(self) -> None:
        self.process.terminate()  # SIGTERM: "smart" shutdown, then fast once clients are gone
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start(initdb: Path) -> PostgresServer:
    """Initialise a cluster in a new temporary folder and start its server; waits until it answers."""
    folder = Path(tempfile.mkdtemp(prefix="watcher-pg-"))
    as_user = _unprivileged(folder)
    bin_dir = initdb.parent
    (folder / "pw").write_text(PASSWORD + "\n")
    data = folder / "data"
    subprocess.run(
        [*as_user, str(initdb), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-sync",
         "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={folder / 'pw'}"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = _free_port()
    command = [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
               "-k", str(folder), "-c", "fsync=off", "-c", "synchronous_commit=off",
               "-c", "full_page_writes=off", "-c", "max_connections=300"]  # fmt: skip
    server = PostgresServer(_launch(command, folder), folder, port, command)
    _wait(server)
    return server


def _launch(command: list[str], folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=(folder / "server.log").open("ab"))


def _unprivileged(folder: Path) -> list[str]:
    """The command prefix that runs the server as someone other than root (nothing if not root)."""
    if os.geteuid() != 0:
        return []
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True, capture_output=True,
        )  # fmt: skip
    shutil.chown(folder, USER, None)
    return ["runuser", "-u", USER, "--"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(server: PostgresServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                log = (server.folder / "server.log").read_text(errors="replace")[-2000:]
                server.stop()
                raise RuntimeError(f"postgres did not start: {log}") from None
            time.sleep(0.1)
