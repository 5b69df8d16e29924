"""The history tests' stores: every store test runs on SQLite and on PostgreSQL (a database of
its own on the machine's server); `throwaway` is a PostgreSQL server of the test's own."""

from __future__ import annotations

import pytest

from aura_dashboard.collectors.database import dsn_of
from aura_dashboard.history import PostgresHistory, SqliteHistory
from tests import pg
from tests.collectors.test_database import db_settings, machine_db, throwaway  # noqa: F401 (fixtures)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteHistory(str(tmp_path / "history.db"))
    else:
        name = request.getfixturevalue("machine_db")
        s = PostgresHistory(dsn_of(db_settings({"DATABASE_HOST": pg.MACHINE_PG["host"],
                                                "DATABASE_PORT": str(pg.MACHINE_PG["port"]),
                                                "DATABASE_NAME": name, "DATABASE_USER": "postgres"}), 3))
    await s.open()
    yield s
    await s.close()
