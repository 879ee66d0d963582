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

import psycopg2
import psycopg2.extras
import pytest
from pydantic import BaseModel, SecretStr
from sqlalchemy import text as sql_text
from sqlalchemy.exc import DBAPIError

from elearn_data import migrations
from elearn_data.cluster.local import (
    APP_USER,
    REPLICATION_PASSFILE,
    LocalCluster,
    _set_password,
)
from elearn_data.config import Settings, ShardSettings, redact, split_password
from elearn_data.content import ContentStore
from elearn_data.database import Database, connect
from elearn_data.errors import ConfigurationError, ElearnDataError
from elearn_data.health import health_report
from elearn_data.security import Passwords
from tests.integration.api.helpers import register

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
    # Names that contain a secret word without holding a secret: a key's public id,
    # a token's lifetime.
    not_secret = {"web.signing_key_id", "web.access_token_ttl_s"}
    plain = {
        n: a
        for n, a in secret.items()
        if n not in not_secret and SecretStr not in (*typing.get_args(a), a)
    }
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
        argon2_allow_weak=True,
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


# ------------------------------------------------------------------ files


def test_the_runtime_settings_file_holds_the_app_credentials_and_hash_key_only(
    cluster: LocalCluster,
) -> None:
    state = cluster.state()
    stored = json.loads(cluster.settings_path.read_text())
    assert stored["app_user"] == APP_USER
    assert stored["db_password"] == state.app_password
    assert stored["email_hash_key"] == state.email_hash_key
    text_of_file = cluster.settings_path.read_text()
    for other in (
        state.owner_password,
        state.superuser_password,
        state.replication_password,
    ):
        assert other not in text_of_file
    secret_keys = {k for k in stored if any(w in k for w in ("password", "secret", "key"))}
    # The analyst role's password is there for db.analytics.sql: that role only
    # reads the analyst-visible columns (revision 0007), less than the app role.
    assert secret_keys == {"db_password", "email_hash_key", "analyst_password"}
    # The operator's file keeps the administration secrets (an interface of cluster.json).
    inventory = json.loads(cluster.state_path.read_text())
    assert inventory["superuser_password"] == state.superuser_password
    assert inventory["owner_password"] == state.owner_password


def test_migrations_find_the_owner_password_outside_the_runtime_settings(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = cluster.state()
    settings = Settings(home=cluster.home)
    assert settings.owner_password is None  # not in settings.json
    assert settings.owner_credentials() == ("elearn_owner", state.owner_password)
    explicit = Settings(home=cluster.home, owner_password="from-the-environment")
    assert explicit.owner_credentials() == ("elearn_owner", "from-the-environment")
    monkeypatch.setenv("ELEARN_OWNER_URL", "postgresql://migrator:url-secret@db/x")
    from_url = Settings(home=cluster.home)
    assert from_url.owner_credentials() == ("migrator", "url-secret")
    assert "url-secret" not in repr(from_url)


def test_standbys_read_the_replication_password_from_a_private_passfile(
    cluster: LocalCluster,
) -> None:
    state = cluster.state()
    passfile = cluster.pg_root / REPLICATION_PASSFILE
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    for node in state.nodes:
        if node.role != "replica":
            continue
        auto = (cluster.data_dir(node) / "postgresql.auto.conf").read_text()
        assert state.replication_password not in auto, node.name
        assert f"passfile={passfile}" in auto, node.name


# -------------------------------------------------------------- passwords


def test_role_passwords_travel_as_scram_verifiers_and_only_when_they_change(
    cluster: LocalCluster,
) -> None:
    state = cluster.state()
    node = state.primary_of("na")
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=node.port,
        user="postgres",
        password=state.superuser_password,
        dbname="postgres",
        connection_factory=psycopg2.extras.LoggingConnection,
    )
    sent: list[str] = []

    class _Sink:
        def write(self, line: str) -> None:
            sent.append(line)

    conn.initialize(_Sink())
    conn.autocommit = True
    role = f"elearn_pw_check_{os.getpid()}"
    first, second = "First-Pa55word-Never-Sent", "Second-Pa55word-Never-Sent"
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {role} LOGIN")
        assert _set_password(conn, role, first) is True
        assert _set_password(conn, role, first) is False  # unchanged: nothing sent
        assert _set_password(conn, role, second) is True
        with conn.cursor() as cur:
            cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
            verifier = cur.fetchone()[0]
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        conn.close()
    alters = [line for line in sent if "ALTER ROLE" in line]
    assert len(alters) == 2
    assert all("SCRAM-SHA-256$" in line for line in alters)
    assert not [line for line in sent if first in line or second in line]
    assert verifier.startswith("SCRAM-SHA-256$")


def test_cluster_up_again_does_not_reset_unchanged_passwords(cluster: LocalCluster) -> None:
    def verifiers() -> dict[str, str]:
        conn = cluster.admin_connect(cluster.state().primary_of("eu"))
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE 'elearn%%'"
                )
                return dict(cur.fetchall())
        finally:
            conn.close()

    before = verifiers()
    cluster.up(replicas=1)
    # A re-sent password would get a new random salt, hence a new verifier.
    assert verifiers() == before
    assert all(v.startswith("SCRAM-SHA-256$") for v in before.values())


# ------------------------------------------------------------------- logs


def test_a_failing_statement_leaves_no_value_in_the_server_log_or_the_error(
    db: Database, cluster: LocalCluster
) -> None:
    marker = f"Pii-Marker-{os.getpid()}"
    node = cluster.state().primary_of("eu")
    log_file = cluster.log_file(node)
    before = log_file.stat().st_size
    engine = db.cluster.engines.primary("eu").engine
    with engine.connect() as conn:
        for statement, params in (
            # A CHECK violation (its DETAIL would list the whole row) ...
            (
                "INSERT INTO users (id, email, password_hash, first_name, last_name, region)"
                " VALUES (elearn_new_id('europe'), :v, 'x', :v, :v, 'europe')",
                {"v": marker},
            ),
            # ... on another table, with the value in a bound parameter only.
            (
                "INSERT INTO user_profiles (user_id, phone, city)"
                " VALUES (gen_random_uuid(), :v, :v)",
                {"v": marker},
            ),
        ):
            with pytest.raises(DBAPIError) as info:
                conn.execute(sql_text(statement), params)
            conn.rollback()
            assert "[parameters" not in str(info.value)
            assert "parameters hidden" in str(info.value)
    # The server wrote its error lines; none holds the statement or a value.
    # (A message itself may quote a value, e.g. a type error's; the library's
    # Python checks keep such values from reaching the server at all.)
    logged = log_file.read_bytes()[before:].decode("utf-8", "replace")
    assert "ERROR" in logged
    assert marker not in logged
    assert "STATEMENT" not in logged and "DETAIL" not in logged


# ------------------------------------------------------------------- misc


def test_a_password_in_the_query_string_is_redacted_and_moved_into_a_secret() -> None:
    url = f"postgresql://app@db:5432/x?sslmode=require&password={MONGO_PASSWORD}&connect_timeout=3"
    assert MONGO_PASSWORD not in redact(url)
    assert "password=***" in redact(url) and "sslmode=require" in redact(url)
    bare, found = split_password(url)
    assert found == MONGO_PASSWORD and MONGO_PASSWORD not in bare
    assert "connect_timeout=3" in bare
    settings = Settings(
        shards={"na": {"primary": url}, "eu": {"primary": url}, "apac": {"primary": url}}
    )
    assert settings.shard_password("na") == MONGO_PASSWORD
    assert MONGO_PASSWORD not in repr(settings) + settings.model_dump_json()


def test_argon2_defaults_meet_owasp_and_weaker_settings_are_refused(tmp_path: Any) -> None:
    shards = {s: {"primary": "postgresql://app@db/x"} for s in ("na", "eu", "apac")}
    defaults = Settings(home=tmp_path, shards=shards)
    assert (defaults.argon2_memory_kib, defaults.argon2_time_cost) >= (47104, 1)
    for memory, passes in ((8192, 1), (19456, 1), (12288, 2), (7168, 4), (47103, 1)):
        with pytest.raises((ConfigurationError, ValueError), match="OWASP"):
            Settings(
                home=tmp_path, shards=shards, argon2_memory_kib=memory, argon2_time_cost=passes
            )
    for memory, passes in ((19456, 2), (7168, 5), (65536, 3)):
        Settings(home=tmp_path, shards=shards, argon2_memory_kib=memory, argon2_time_cost=passes)
    # model_copy() skips validation; the hasher checks again.
    weak = defaults.model_copy(update={"argon2_memory_kib": 1024})
    with pytest.raises(ConfigurationError, match="OWASP"):
        Passwords(weak)


def test_sqlalchemy_info_logging_shows_no_hash_or_personal_value(clean: Database) -> None:
    capture = _Capture()
    engine_log = logging.getLogger("sqlalchemy.engine")
    level = engine_log.level
    engine_log.addHandler(capture)
    engine_log.setLevel(logging.INFO)  # statements and their parameters
    phone = "+44 20 7946 0000"
    try:
        email = f"info-log-{os.getpid()}@example.org"
        user = register(clean, "europe", email=email, password=USER_PASSWORD, phone=phone)
        assert clean.users.authenticate(email, USER_PASSWORD) is not None
        clean.users.update_profile(user, city="Info-Log-City")
    finally:
        engine_log.removeHandler(capture)
        engine_log.setLevel(level)
    assert any("INSERT INTO" in line for line in capture.lines)
    assert any("parameters hidden" in line for line in capture.lines)
    for value in ("$argon2id$", email, phone, "Info-Log-City", USER_PASSWORD):
        assert not [line for line in capture.lines if value in line], value
