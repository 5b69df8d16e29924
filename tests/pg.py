"""A throwaway PostgreSQL server of the tests' own (initdb + pg_ctl on a free port), which a
test may stop and start again; and a database of its own on the machine's server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg2

from tests.conftest import free_port

BIN = Path(os.environ.get("AURA_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
MACHINE_PG = {"host": os.environ.get("AURA_TEST_PG_HOST", "127.0.0.1"),
              "port": int(os.environ.get("AURA_TEST_PG_PORT", "5432")), "user": "postgres"}


def available() -> bool:
    return (BIN / "initdb").exists() and (BIN / "pg_ctl").exists()


def _as_postgres(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; on a root machine run it as the postgres user.
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class ThrowawayPostgres:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="aura-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres([str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                     "--no-sync"]), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-o",
                                     f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                                     "-l", str(self.dir / "log"), "start"]), check=True, capture_output=True, timeout=90)

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)

    def env(self) -> dict[str, str]:
        return {"DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": str(self.port), "DATABASE_NAME": "postgres",
                "DATABASE_USER": "postgres", "DATABASE_PASSWORD": ""}

    def query(self, sql: str):
        with psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres") as conn:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def machine_database() -> str | None:
    """A fresh database on the machine's PostgreSQL, or None when it is not reachable."""
    name = f"aura_test_{uuid.uuid4().hex[:10]}"
    try:
        conn = psycopg2.connect(dbname="postgres", connect_timeout=3, **MACHINE_PG)
    except psycopg2.OperationalError:
        return None
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return name


def drop_machine_database(name: str) -> None:
    conn = psycopg2.connect(dbname="postgres", **MACHINE_PG)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()
