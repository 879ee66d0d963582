"""Secrets: SecretStr in the settings, and no password in any log line, repr, str or error.

The embedded cluster's inventory holds every secret of the platform (superuser,
replication, owner and application passwords, the email hash key); a learner
adds their own password. With every logger at DEBUG -- SQLAlchemy's engine and
pool loggers included, which print statements and their parameters -- a
workload that migrates, registers, logs in, fails in several ways and reports
health must not print any of them, and neither may the repr/str of the
objects a user handles.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from elearn_data import migrations
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings, ShardSettings
from elearn_data.content import ContentStore
from elearn_data.database import connect
from elearn_data.errors import ElearnDataError
from tests.integration.api.helpers import register

try:  # written concurrently by another engineer; used when present
    from elearn_data.health import health_report
except ImportError:  # pragma: no cover - depends on the tree's state
    health_report = None  # type: ignore[assignment]

USER_PASSWORD = "Learner-Pa55word-Never-Shown"
WRONG_DB_PASSWORD = "Wrong-Db-Pa55word-Never-Shown"
MONGO_PASSWORD = "Mongo-Pa55word-Never-Shown"
SECRET_NAMES = ("password", "secret", "key", "token", "uri", "dsn", "credential")


def _secret_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", info.annotation
        for arg in typing.get_args(info.annotation) or (info.annotation,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _secret_fields(arg, f"{prefix}{name}.")


def test_every_secret_in_the_settings_is_a_secret_str() -> None:
    fields = dict(_secret_fields(Settings))
    fields.update({f"shards.*.{k}": v for k, v in _secret_fields(ShardSettings)})
    secret = {
        name: annotation
        for name, annotation in fields.items()
        if any(word in name.rsplit(".", 1)[-1] for word in SECRET_NAMES)
    }
    assert set(secret) >= {
        "db_password",
        "owner_password",
        "analyst_password",
        "email_hash_key",
        "mongo_uri",
        "shards.*.password",
    }
    plain = {n: a for n, a in secret.items() if SecretStr not in (*typing.get_args(a), a)}
    assert plain == {}, f"secrets that are not SecretStr: {plain}"


def test_a_password_written_in_a_shard_url_is_moved_into_a_secret() -> None:
    settings = Settings(
        shards={
            "na": {"primary": f"postgresql://app:{MONGO_PASSWORD}@db1:5432,db2:5432/x"},
            "eu": {"primary": "postgresql://app@db3/x"},
            "apac": {"primary": "postgresql://app@db4/x"},
        }
    )
    assert settings.shard_password("na") == MONGO_PASSWORD
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert MONGO_PASSWORD not in text
    assert MONGO_PASSWORD not in json.dumps(settings.model_dump(mode="json"))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # includes exc_info tracebacks


@pytest.fixture
def debug_logs() -> Iterator[_Capture]:
    capture = _Capture()
    root = logging.getLogger()
    names = ["", "sqlalchemy.engine", "sqlalchemy.pool", "alembic", "elearn_data"]
    levels = {name: logging.getLogger(name).level for name in names}
    root.addHandler(capture)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _texts(value: object) -> list[str]:
    out = [repr(value), str(value)]
    if isinstance(value, BaseException):
        cause = value.__cause__ or value.__context__
        while cause is not None:
            out += [repr(cause), str(cause)]
            cause = cause.__cause__ or cause.__context__
    return out


def test_no_log_line_repr_or_error_contains_a_password(
    migrated: Settings, cluster: LocalCluster, debug_logs: _Capture
) -> None:
    state = cluster.state()
    secrets = {
        "superuser password": state.superuser_password,
        "replication password": state.replication_password,
        "owner password": state.owner_password,
        "application password": state.app_password,
        "analyst password": state.analyst_password,
        "email hash key": state.email_hash_key,
        "a learner's password": USER_PASSWORD,
        "a wrong database password": WRONG_DB_PASSWORD,
        "the MongoDB password": MONGO_PASSWORD,
    }
    shown: list[object] = []
    settings = Settings(
        home=cluster.home,
        argon2_time_cost=1,
        argon2_memory_kib=8192,
        mongo_db="elearn_secrets_test",
    )
    migrations.upgrade(settings)  # as the owner, with the owner password
    db = connect(settings)
    try:
        email = f"secret-{os.getpid()}@example.org"
        user = register(db, "europe", email=email, password=USER_PASSWORD)
        assert db.users.authenticate(email, USER_PASSWORD) is not None
        assert db.users.authenticate(email, "not the password at all") is None
        for bad in (
            lambda: register(db, "asia", email=email, password=USER_PASSWORD),
            lambda: register(db, "asia", password=USER_PASSWORD[:5]),
            lambda: register(db, "mars", password=USER_PASSWORD),
        ):
            with pytest.raises(ElearnDataError) as info:
                bad()
            shown.append(info.value)
        db.users.update_profile(user, city="Paris")
        db.recover(grace_s=0)
        # Analyst SQL: DuckDB's attachments, its secret and its errors.
        assert int(db.analytics.sql("SELECT count(*) AS n FROM users")["n"][0]) >= 1
        with pytest.raises(ElearnDataError) as info:
            db.analytics.sql("SELECT * FROM nowhere")
        shown += [info.value, db.analytics.engine, *db.analytics.engine.attached_paths()]
        with db.writer("eu") as uow:
            uow.connection("eu")
            shown += [uow, uow.session, uow.connection("eu")]
            shown.append(uow.connection("eu").connection.dbapi_connection)
        engines = db.cluster.engines
        shown += [db, db.settings, db.cluster, engines, *engines.nodes(), engines.describe()]
        shown += [node.engine for node in engines.nodes()]
        shown += [engines.pool_stats(), db.content_store, cluster, state]
        shown += [json.dumps([n.to_dict() for n in cluster.status()])]
        shown.append(settings.model_dump_json())
        shown.append(json.dumps(settings.model_dump(mode="json")))
        if health_report is not None:
            shown.append(json.dumps(health_report(db, timeout_s=2).to_dict()))

        # The wrong password: the server refuses it, and nobody repeats it.
        wrong = Settings(
            home=cluster.home,
            db_password=WRONG_DB_PASSWORD,
            recover_on_connect=True,
            mongo_db="elearn_secrets_test",
        )
        refused = connect(wrong)
        try:
            with pytest.raises(ElearnDataError) as info:
                refused.users.get(user)
            shown += [info.value, refused, wrong]
        finally:
            refused.close()

        mongo = Settings(
            home=cluster.home, mongo_uri=f"mongodb://elearn:{MONGO_PASSWORD}@127.0.0.1:9/x"
        )
        store = ContentStore(mongo)
        try:
            shown += [store, mongo]
        finally:
            store.close()
    finally:
        db.close()

    texts = [t for value in shown for t in _texts(value)]
    leaks = {
        what: [line[:200] for line in debug_logs.lines + texts if secret in line]
        for what, secret in secrets.items()
    }
    assert {what: found for what, found in leaks.items() if found} == {}
    # The capture really saw the SQL traffic (statements at DEBUG/INFO).
    assert any("INSERT INTO" in line for line in debug_logs.lines)


def test_the_files_holding_cluster_secrets_are_private(cluster: LocalCluster) -> None:
    for path in (cluster.state_path, cluster.settings_path):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"{path} has mode {oct(mode)}"
    assert stat.S_IMODE(cluster.pg_root.stat().st_mode) == 0o700
