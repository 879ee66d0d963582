"""Least privilege: migrations run as the schema owner; the application role runs DML only.

Roles on every primary (``elearn_data/cluster/local.py``): ``postgres``
(superuser, cluster administration only), ``elearn_owner`` (owns the database,
the schema and every object: migrations), ``elearn_app`` (what ``connect()``
uses: SELECT/INSERT/UPDATE/DELETE on tables -- INSERT/SELECT only on the money
tables, SELECT only on the protocol tables --, EXECUTE on functions, no
monitoring role) and ``elearn_replicator`` (replication only). pg_hba.conf has
one rule per role and database; PUBLIC may not connect to any database or
create temporary tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.extras
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from elearn_data.cluster.local import (
    DBNAME,
    HOST,
    OWNER_USER,
    REPLICATION_USER,
    SUPERUSER,
    LocalCluster,
    NodeSpec,
)
from elearn_data.config import Settings
from elearn_data.database import Database
from tests.integration.reliability.drills import admin

# DDL (and other owner-only commands) the application role must be refused.
REFUSED = [
    "CREATE TABLE not_allowed (x int)",
    "CREATE TEMP TABLE not_allowed (x int)",
    "CREATE TEMP VIEW not_allowed AS SELECT 1",
    "CREATE VIEW not_allowed AS SELECT 1",
    "CREATE MATERIALIZED VIEW not_allowed AS SELECT 1",
    "CREATE SEQUENCE not_allowed",
    "CREATE TYPE not_allowed AS (a int)",
    "CREATE SCHEMA not_allowed",
    "CREATE INDEX not_allowed ON users (first_name)",
    "CREATE FUNCTION not_allowed() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE OR REPLACE FUNCTION elearn_shard() RETURNS text LANGUAGE sql AS 'SELECT 1::text'",
    "CREATE TRIGGER not_allowed BEFORE UPDATE ON users "
    "FOR EACH ROW EXECUTE FUNCTION elearn_touch_updated_at()",
    "CREATE EXTENSION pgcrypto",
    "CREATE ROLE not_allowed",
    "ALTER TABLE users ADD COLUMN not_allowed int",
    "ALTER TABLE users DISABLE TRIGGER ALL",
    "ALTER TABLE users OWNER TO elearn_app",
    "ALTER FUNCTION elearn_shard() OWNER TO elearn_app",
    "ALTER ROLE elearn_app SUPERUSER",
    "COMMENT ON TABLE users IS 'not allowed'",
    "DROP TABLE users",
    "DROP FUNCTION elearn_shard()",
    "DROP TRIGGER IF EXISTS trg_users_updated_at ON users",
    "TRUNCATE users",
    "TRUNCATE course_seats",
    "REINDEX TABLE users",
    "CLUSTER users USING pk_users",
    "UPDATE alembic_version SET version_num = version_num",
    "DELETE FROM alembic_version",
    "SET session_replication_role = replica",
    "COPY users TO '/tmp/elearn-not-allowed'",
    "SELECT pg_read_file('postgresql.conf')",
]

# Writes the application role must be refused (finding: it could rewrite the books
# and break two-phase recovery): money rows are append-only, protocol rows change
# only through the owner's functions.
REFUSED_WRITES = [
    "DELETE FROM invoices",
    "UPDATE invoices SET status = 'void'",
    "UPDATE transactions SET amount = amount + 1",
    "UPDATE transactions SET status = 'refunded'",
    "DELETE FROM transactions",
    "SELECT 1 FROM transactions FOR UPDATE",
    "INSERT INTO twophase_decisions (gid, committed) VALUES ('elearn:na:x', true)",
    "UPDATE twophase_decisions SET committed = NOT committed",
    "DELETE FROM twophase_decisions",
    "INSERT INTO shard_meta (key, value) VALUES ('other', 'x')",
    "UPDATE shard_meta SET value = 'eu'",
    "DELETE FROM shard_meta",
    # Settings and statistics of other roles (no pg_monitor).
    "SELECT current_setting('primary_conninfo')",
    "SELECT current_setting('data_directory')",
    "SELECT pg_ls_dir('.')",
    "SELECT pg_stat_reset()",
]

# The owner's SECURITY DEFINER functions (revision 0005 and the money functions).
SECURITY_DEFINER = {
    "complete_transaction",
    "fail_transaction",
    "refund_transaction",
    "elearn_standby_state",
    "elearn_replication_state",
    "elearn_twophase_decide",
    "elearn_twophase_claim_abort",
    "elearn_twophase_forget",
}


@pytest.fixture(scope="module")
def app(db: Database) -> Iterator[Connection]:
    """A connection to the na primary as the application role, inside a transaction."""
    with db.cluster.engines.primary("na").engine.connect() as conn:
        yield conn


def _objects_and_owners(cluster: LocalCluster, shard: str) -> dict[str, set[str]]:
    conn = admin(cluster, cluster.state().primary_of(shard))
    try:
        with conn.cursor() as cur:
            owners: dict[str, set[str]] = {}
            queries = {
                "schema": "SELECT nspowner::regrole::text FROM pg_namespace "
                "WHERE nspname = 'public'",
                "database": "SELECT datdba::regrole::text FROM pg_database "
                "WHERE datname = current_database()",
                "tables": "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
                "sequences": "SELECT DISTINCT sequenceowner FROM pg_sequences "
                "WHERE schemaname = 'public'",
                "functions": "SELECT DISTINCT proowner::regrole::text FROM pg_proc "
                "WHERE pronamespace = 'public'::regnamespace",
                "types": "SELECT DISTINCT typowner::regrole::text FROM pg_type "
                "WHERE typnamespace = 'public'::regnamespace",
            }
            for kind, query in queries.items():
                cur.execute(query)
                owners[kind] = {row[0] for row in cur.fetchall()}
            return owners
    finally:
        conn.close()


def test_migrations_ran_as_the_owner_who_owns_every_object(
    migrated: Settings, cluster: LocalCluster
) -> None:
    for shard in cluster.state().shards:
        owners = _objects_and_owners(cluster, shard)
        assert owners == {
            "schema": {migrated.owner_user},
            "database": {migrated.owner_user},
            "tables": {migrated.owner_user},
            "sequences": {migrated.owner_user},
            "functions": {migrated.owner_user},
            "types": {migrated.owner_user},
        }, shard


def test_neither_the_owner_nor_the_application_role_is_privileged(
    migrated: Settings, cluster: LocalCluster
) -> None:
    conn = admin(cluster, cluster.state().primary_of("eu"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
                "rolbypassrls FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
                ([migrated.app_user, migrated.owner_user],),
            )
            rows = cur.fetchall()
            cur.execute(
                "SELECT pg_has_role(%s, %s, 'MEMBER')", (migrated.app_user, migrated.owner_user)
            )
            app_is_owner = cur.fetchone()[0]
    finally:
        conn.close()
    assert rows == [
        (migrated.app_user, False, False, False, False, False),
        (migrated.owner_user, False, False, False, False, False),
    ]
    assert app_is_owner is False


def test_the_library_connects_as_the_application_role(db: Database) -> None:
    for shard in db.router.shards:
        with db.writer(shard) as uow:
            assert uow.execute(text("SELECT current_user"), shard=shard).scalar_one() == (
                db.settings.app_user
            )


@pytest.mark.parametrize("statement", REFUSED)
def test_the_application_role_cannot_run_ddl(app: Connection, statement: str) -> None:
    try:
        with pytest.raises(DBAPIError) as info:
            app.execute(text(statement))
        assert isinstance(info.value.orig, psycopg2.errors.InsufficientPrivilege), (
            f"{statement!r} failed with {type(info.value.orig).__name__}, not a privilege error"
        )
    finally:
        app.rollback()


def test_a_grant_by_the_application_role_grants_nothing(app: Connection) -> None:
    try:
        # Not an error in PostgreSQL, only a warning: "no privileges were granted".
        app.execute(text("GRANT SELECT ON users TO PUBLIC"))
        granted = app.execute(
            text(
                "SELECT count(*) FROM information_schema.role_table_grants "
                "WHERE grantee = 'PUBLIC' AND table_name = 'users'"
            )
        ).scalar_one()
        assert granted == 0
    finally:
        app.rollback()


def test_the_application_role_runs_dml_and_calls_the_functions(app: Connection) -> None:
    try:
        assert app.execute(text("SELECT elearn_shard()")).scalar_one() == "na"
        app.execute(
            text(
                "INSERT INTO course_categories (id, name) "
                "VALUES (elearn_new_reference_id(NULL), 'privilege check')"
            )
        )
        app.execute(
            text("UPDATE course_categories SET description = 'x' WHERE name = :n"),
            {"n": "privilege check"},
        )
        assert (
            app.execute(
                text("DELETE FROM course_categories WHERE name = :n"), {"n": "privilege check"}
            ).rowcount
            == 1
        )
        assert app.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        app.execute(text("SELECT nextval('invoice_number_seq')"))
    finally:
        app.rollback()


@pytest.mark.parametrize("statement", REFUSED_WRITES)
def test_the_application_role_cannot_rewrite_money_or_protocol_rows(
    app: Connection, statement: str
) -> None:
    try:
        with pytest.raises(DBAPIError) as info:
            app.execute(text(statement))
        assert isinstance(info.value.orig, psycopg2.errors.InsufficientPrivilege), (
            f"{statement!r} failed with {type(info.value.orig).__name__}, not a privilege error"
        )
    finally:
        app.rollback()


def test_the_application_role_holds_no_monitoring_role(
    migrated: Settings, cluster: LocalCluster
) -> None:
    conn = admin(cluster, cluster.state().primary_of("na"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT r.rolname FROM pg_roles r WHERE r.rolname LIKE 'pg\\_%%' "
                "AND pg_has_role(%s, r.oid, 'USAGE') ORDER BY 1",
                (migrated.app_user,),
            )
            inherited = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    assert inherited == []


def _app_on(db: Database, shard: str, role: str) -> Any:
    node = (
        db.cluster.engines.primary(shard)
        if role == "primary"
        else db.cluster.engines.replicas(shard)[0]
    )
    return node.engine.connect()


def test_a_replica_does_not_show_the_replication_password_to_the_application_role(
    db: Database, cluster: LocalCluster
) -> None:
    replica = cluster.state().replicas_of("eu")[0]
    with _app_on(db, "eu", "replica") as conn:
        assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True
        with pytest.raises(DBAPIError) as info:
            conn.execute(text("SELECT current_setting('primary_conninfo')"))
        assert isinstance(info.value.orig, psycopg2.errors.InsufficientPrivilege)
    # Not even the superuser finds a password there: the standby uses a passfile.
    conninfo = admin(cluster, replica)
    try:
        with conninfo.cursor() as cur:
            cur.execute("SELECT current_setting('primary_conninfo')")
            setting = cur.fetchone()[0]
    finally:
        conninfo.close()
    assert "password" not in setting.replace("passfile", "")
    assert "passfile=" in setting
    assert cluster.state().replication_password not in setting


def test_replica_choice_and_health_work_through_the_owner_functions(
    db: Database, cluster: LocalCluster
) -> None:
    with _app_on(db, "eu", "replica") as conn:
        replay, pending, receiver = conn.execute(
            text("SELECT replay_lsn, pending_bytes, receiver_status FROM elearn_standby_state()")
        ).one()
        assert replay > 0 and pending >= 0
        assert receiver == "streaming"
        # The view itself hides the status from the application role.
        assert conn.execute(text("SELECT status FROM pg_stat_wal_receiver")).scalar() is None
    with _app_on(db, "eu", "primary") as conn:
        rows = conn.execute(text("SELECT * FROM elearn_replication_state()")).all()
        names = {row.application_name for row in rows}
        assert {n.name for n in cluster.state().replicas_of("eu")} <= names
        assert all(row.state == "streaming" and row.replay_lsn > 0 for row in rows)
        # Other roles' sessions show no query text (pg_read_all_stats is the owner's only).
        other = admin(cluster, cluster.state().primary_of("eu"))
        try:
            with other.cursor() as cur:
                cur.execute("SELECT 'a superuser statement'")
            texts = conn.execute(
                text("SELECT DISTINCT query FROM pg_stat_activity WHERE usename = 'postgres'")
            ).scalars()
            assert set(texts) == {"<insufficient privilege>"}
        finally:
            other.close()


def test_security_definer_functions_have_a_fixed_search_path_and_no_public_execute(
    migrated: Settings, cluster: LocalCluster
) -> None:
    conn = admin(cluster, cluster.state().primary_of("apac"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT proname, proconfig, proowner::regrole::text, "
                "has_function_privilege('public', p.oid, 'EXECUTE'), "
                "has_function_privilege(%s, p.oid, 'EXECUTE') "
                "FROM pg_proc p WHERE pronamespace = 'public'::regnamespace AND prosecdef",
                (migrated.app_user,),
            )
            rows = {row[0]: row[1:] for row in cur.fetchall()}
    finally:
        conn.close()
    assert set(rows) == SECURITY_DEFINER
    for name, (config, owner, public, app_may) in rows.items():
        assert owner == migrated.owner_user, name
        assert any(c.startswith("search_path=pg_catalog") for c in config or []), name
        assert (public, app_may) == (False, True), name


def test_the_application_role_still_pays_and_decides_through_the_functions(
    app: Connection,
) -> None:
    try:
        app.execute(text("SELECT elearn_twophase_decide('elearn:na:privilege-check')"))
        app.execute(text("SELECT elearn_twophase_claim_abort('elearn:na:privilege-check')"))
        assert (
            app.execute(
                text("SELECT committed FROM twophase_decisions WHERE gid = :g"),
                {"g": "elearn:na:privilege-check"},
            ).scalar_one()
            is True
        )
        with pytest.raises(DBAPIError) as info:
            app.execute(text("SELECT elearn_twophase_decide('elearn:na:privilege-check')"))
        assert isinstance(info.value.orig, psycopg2.errors.UniqueViolation)
    finally:
        app.rollback()


def _try_connect(node: NodeSpec, user: str, password: str, dbname: str, **extra: Any) -> str:
    """Return "ok", or the first line of the refusal."""
    try:
        conn = psycopg2.connect(
            host=HOST,
            port=node.port,
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=3,
            **extra,
        )
    except psycopg2.OperationalError as exc:
        return str(exc).strip().splitlines()[0]
    conn.close()
    return "ok"


def test_each_role_reaches_only_its_own_databases(
    migrated: Settings, cluster: LocalCluster
) -> None:
    state = cluster.state()
    primary = state.primary_of("eu")
    app_pw = migrated.shard_password("eu") or ""
    assert _try_connect(primary, migrated.app_user, app_pw, DBNAME) == "ok"
    assert _try_connect(primary, OWNER_USER, state.owner_password, DBNAME) == "ok"
    assert _try_connect(primary, SUPERUSER, state.superuser_password, DBNAME) == "ok"
    for dbname in ("postgres", "template1"):
        refused = _try_connect(primary, migrated.app_user, app_pw, dbname)
        assert "no pg_hba.conf entry" in refused, (dbname, refused)
    refused = _try_connect(primary, REPLICATION_USER, state.replication_password, DBNAME)
    assert "no pg_hba.conf entry" in refused
    # Replication connections: for the replicator only.
    for user, password in ((migrated.app_user, app_pw), (OWNER_USER, state.owner_password)):
        refused = _try_connect(
            primary,
            user,
            password,
            DBNAME,
            connection_factory=psycopg2.extras.PhysicalReplicationConnection,
        )
        assert "no pg_hba.conf entry for replication connection" in refused, (user, refused)
    assert (
        _try_connect(
            primary,
            REPLICATION_USER,
            state.replication_password,
            DBNAME,
            connection_factory=psycopg2.extras.PhysicalReplicationConnection,
        )
        == "ok"
    )


def test_public_may_not_connect_or_create_temporary_tables_anywhere(
    migrated: Settings, cluster: LocalCluster
) -> None:
    conn = admin(cluster, cluster.state().primary_of("na"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT datname, has_database_privilege('public', datname, 'CONNECT'), "
                "has_database_privilege('public', datname, 'TEMPORARY'), "
                "has_database_privilege(%s, datname, 'CONNECT'), "
                "has_database_privilege(%s, datname, 'TEMPORARY') "
                "FROM pg_database WHERE datname IN ('elearn', 'postgres', 'template1') "
                "ORDER BY datname",
                (migrated.app_user, migrated.app_user),
            )
            rights = cur.fetchall()
    finally:
        conn.close()
    assert rights == [
        ("elearn", False, False, True, False),
        ("postgres", False, False, False, False),
        ("template1", False, False, False, False),
    ]


def test_pg_hba_has_one_rule_per_role_and_database(cluster: LocalCluster) -> None:
    for node in cluster.state().nodes:
        lines = (cluster.data_dir(node) / "pg_hba.conf").read_text().splitlines()
        rules = [line.split() for line in lines if line.strip() and not line.startswith("#")]
        assert rules, node.name
        for rule in rules:
            database, user = rule[1], rule[2]
            assert "," not in database and "," not in user, rule
            assert user != "all", rule
            if database == "all":
                assert user == SUPERUSER, rule
            if database == "replication":
                assert user == REPLICATION_USER, rule
            if rule[0] == "host":
                assert rule[3] == f"{HOST}/32" and rule[4] == "scram-sha-256", rule
