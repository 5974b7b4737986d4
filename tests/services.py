"""Throwaway PostgreSQL for the test session, started from the installed server binaries.

PostgreSQL refuses to run as root; when the tests run as root (CI), the server is started as
the unprivileged ``postgres`` system user (created if missing) with ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ServiceUnavailable(RuntimeError):
    """A server binary is missing or the server would not start; the message says which."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise ServiceUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin"
    )


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if subprocess.run(["id", "-u", "postgres"], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
            check=True,
            capture_output=True,
        )
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class PostgresServer:
    bin_dir: Path
    base: Path
    port: int
    keep: bool = False

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/cible"

    @classmethod
    def start(cls, keep: Path | None = None) -> PostgresServer:
        """Start a throwaway server; with ``keep``, the cluster lives in that folder, is
        reused when it already exists there, and is left on disk by ``stop()``."""
        bin_dir = postgres_bin_dir()
        if keep is not None:
            base = keep.resolve()
            base.mkdir(parents=True, exist_ok=True)
        else:
            base = Path(tempfile.mkdtemp(prefix="cible-pg-"))
        os.chmod(base, 0o755)
        if os.geteuid() == 0:
            _as_server_user(["true"])  # ensures the user exists
            shutil.chown(base, user="postgres")
        server = cls(bin_dir=bin_dir, base=base, port=free_port(), keep=keep is not None)
        data = base / "data"
        run = lambda cmd: subprocess.run(_as_server_user(cmd), capture_output=True, text=True)  # noqa: E731
        reused = (data / "PG_VERSION").exists()
        if reused:
            (data / "postmaster.pid").unlink(missing_ok=True)  # left by an interrupted run
        init = (
            None
            if reused
            else run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C",
                ]
            )
        )
        if init is not None and init.returncode != 0:
            raise ServiceUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        options = (
            f"-p {server.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        started = run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        if started.returncode != 0:
            log = (
                (base / "server.log").read_text(errors="replace")[-500:]
                if (base / "server.log").exists()
                else ""
            )
            raise ServiceUnavailable(f"pg_ctl start failed: {started.stderr.strip()} {log}")
        if reused:
            return server
        try:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1",
                port=server.port,
                user="postgres",
                dbname="postgres",
                autocommit=True,
            ) as conn:
                conn.execute("CREATE DATABASE cible")
        except Exception as exc:
            server.stop()
            raise ServiceUnavailable(f"could not create database: {exc}") from exc
        return server

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.base / "data"),
                    "-m",
                    "fast" if self.keep else "immediate",
                    "stop",
                ]
            ),
            capture_output=True,
        )
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)


def _postgres_data_dir(connection) -> Path:
    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        return Path(cursor.fetchone()[0])


def postgres_restart(connection, *, mode: str = "fast", down_seconds: float = 0.0) -> None:
    """Stop the PostgreSQL server behind ``connection`` (``pg_ctl stop -m mode``: ``fast``
    disconnects every client, ``immediate`` is a crash), keep it down ``down_seconds``, and
    start it again with the options it had. Every Django connection of this process is closed
    (their sockets are dead); the next query reconnects."""
    import shlex
    import time

    from django.db import connections

    data = _postgres_data_dir(connection)
    opts = shlex.split((data / "postmaster.opts").read_text())
    args = opts[opts.index("-D") + 2 :] if "-D" in opts else opts[1:]
    connections.close_all()
    pg_ctl = str(postgres_bin_dir() / "pg_ctl")
    run = lambda cmd: subprocess.run(_as_server_user(cmd), capture_output=True, text=True)  # noqa: E731
    stopped = run([pg_ctl, "-D", str(data), "-m", mode, "-w", "stop"])
    if stopped.returncode != 0:
        raise ServiceUnavailable(f"pg_ctl stop failed: {stopped.stderr.strip()}")
    time.sleep(down_seconds)
    started = run(
        [
            pg_ctl,
            "-D",
            str(data),
            "-o",
            shlex.join(args),
            "-l",
            str(data.parent / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    if started.returncode != 0:
        raise ServiceUnavailable(f"pg_ctl start failed: {started.stderr.strip()}")
