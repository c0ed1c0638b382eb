"""A PostgreSQL cluster of a test's own (and a PgBouncer in front of it), for tests that restart
the server or put a pooler between Tapeline and it: the shared server is never touched.

The cluster lives in a temporary directory on a free port and is stopped and removed on exit.
Run as root (CI containers), the server and the pooler run as the `postgres` system user,
since neither agrees to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.server import free_port

SYSTEM_USER = "postgres"


def _bin_dir() -> Path:
    """The newest Debian PostgreSQL's binaries (`postgresql` package)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parent.parent)
    if not found:
        raise RuntimeError(
            "no PostgreSQL binaries in /usr/lib/postgresql (apt-get install postgresql)"
        )
    return found[-1].parent


def _as_owner(args: Sequence[str]) -> list[str]:
    if os.geteuid() != 0:
        return list(args)
    return ["runuser", "-u", SYSTEM_USER, "--", *args]


def _run(args: Sequence[str]) -> None:
    subprocess.run(_as_owner(args), check=True, capture_output=True, timeout=120)


def _private_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


@dataclass
class Cluster:
    """A running private cluster; `url(db)` is a DATABASE_URL for it (trust authentication)."""

    root: Path
    port: int
    bin_dir: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        _run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                *args,
            ]
        )

    def restart(self) -> None:
        """Restart in fast mode: every connection is dropped, the server comes back."""
        self.pg_ctl("restart", "-m", "fast", "-w")

    def create_database(self, name: str) -> None:
        _run(
            [
                str(self.bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ]
        )


@contextlib.contextmanager
def private_cluster(max_connections: int = 100) -> Iterator[Cluster]:
    bin_dir = _bin_dir()
    cluster = Cluster(_private_dir("tapeline-pg-"), free_port(), bin_dir)
    try:
        _run([str(bin_dir / "initdb"), "-D", str(cluster.data), "-U", "postgres",
              "--auth=trust", "-E", "UTF8", "--no-sync"])  # fmt: skip
        options = (
            f"-p {cluster.port} -k {cluster.root} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={max_connections} -c fsync=off -c superuser_reserved_connections=0"
        )
        cluster.pg_ctl("start", "-w", "-o", options)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(cluster.root, ignore_errors=True)


@contextlib.contextmanager
def pgbouncer(cluster: Cluster, database: str, pool_size: int = 5) -> Iterator[int]:
    """Debian's PgBouncer in transaction pooling mode in front of `cluster`; yields its port."""
    root = _private_dir("tapeline-pgbouncer-")
    port = free_port()
    config = root / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"{database} = host=127.0.0.1 port={cluster.port} dbname={database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {root / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmax_client_conn = 200\n"
        f"logfile = {root / 'pgbouncer.log'}\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    (root / "users.txt").write_text('"postgres" ""\n')
    if os.geteuid() == 0:
        user = pwd.getpwnam(SYSTEM_USER)
        for path in (config, root / "users.txt"):
            os.chown(path, user.pw_uid, user.pw_gid)
    proc = subprocess.Popen(
        _as_owner(["pgbouncer", str(config)]), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        _wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(port: int, timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port}")
