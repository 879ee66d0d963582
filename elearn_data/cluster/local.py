"""The embedded cluster: real PostgreSQL primaries and streaming replicas under ELEARN_HOME.

``elearn cluster up`` builds, per shard, one primary (``initdb``) and N streaming
replicas (``pg_basebackup -R -X stream -c fast`` with a replication slot), all
listening on 127.0.0.1 only, each on its own port, and writes two files:

* ``cluster.json`` -- the inventory (nodes, ports, roles, admin secrets), 0600:
  the operator's file; migrations and cluster administration read the owner
  and superuser passwords here;
* ``settings.json`` -- the :class:`~elearn_data.config.Settings` every later
  command and :func:`elearn_data.connect` read, 0600: the application role's
  credentials and the email hash key, no other secret.

Every operation is idempotent: ``up`` starts what is stopped, rebuilds what a
failover left behind, and changes nothing else. A file lock serialises
concurrent commands on one ELEARN_HOME.

Roles created on every primary: ``postgres`` (superuser, cluster administration
only), the schema owner (migrations; it holds ``pg_read_all_stats`` for the
replication facts its SECURITY DEFINER functions return), the application role
(DML and function calls only, no monitoring role), the read-only analyst role
of ``db.analytics.sql`` and a replication role (replication connections only;
standbys read its password from a passfile). Passwords are set as SCRAM
verifiers computed client-side, and only when they change; pg_hba.conf has one
rule per role and database (see ``hba_rules``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from elearn_data.cluster.binaries import ServerUser, find_bindir
from elearn_data.config import SETTINGS_FILE_NAME, Durability
from elearn_data.errors import ConfigurationError, InvalidInput
from elearn_data.regions import DEFAULT_REGION_SHARDS, DEFAULT_SHARDS
from elearn_data.sharding import probes
from elearn_data.sharding.probes import NodeProbe, replay_lag_bytes

log = logging.getLogger(__name__)

Role = Literal["primary", "replica"]

STATE_FILE_NAME = "cluster.json"
# Servers listen below 32768: Linux hands out ports from its ephemeral range
# (net.ipv4.ip_local_port_range, 32768-60999 by default) to outgoing connections,
# so a server port in it can be taken by any client's socket (even in TIME-WAIT).
DEFAULT_BASE_PORT = 24320
MAX_SERVER_PORT = 32767
PORTS_PER_SHARD = 10
DBNAME = "elearn"
HOST = "127.0.0.1"
SUPERUSER = "postgres"
REPLICATION_USER = "elearn_replicator"
OWNER_USER = "elearn_owner"
APP_USER = "elearn_app"
# Read-only role of ``db.analytics.sql`` (SELECT on the analyst-visible columns only,
# granted by the migrations; see elearn_data/analytics/visibility.py).
ANALYST_USER = "elearn_analyst"
# The role's ceiling per PostgreSQL statement; a connection may ask for less.
ANALYST_STATEMENT_TIMEOUT = "300s"
CONF_NAME = "elearn.conf"
HBA_NAME = "pg_hba.conf"
# The replication role's password for standbys (primary_conninfo names this
# file, never the password) and for pg_basebackup; 0600, owned by the server user.
REPLICATION_PASSFILE = "replication.pgpass"
# Databases besides DBNAME that the owner and the application role may reach
# (scratch databases of tests and `elearn bench`), one name per line.
EXTRA_DATABASES_FILE = "databases.extra"
# Created by `elearn backup init` (elearn_data/cluster/backup.py); its presence
# turns on WAL archiving and the private socket pgBackRest talks through.
BACKUP_DIR_NAME = "backup"
BACKUP_CONF_NAME = "pgbackrest.conf"
SOCKET_DIR_NAME = "run"
# pg_stat_statements lives here, apart from the application's schema.
STATS_SCHEMA = "elearn_stats"

Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    return None


@dataclass
class NodeSpec:
    """One PostgreSQL server of the embedded cluster."""

    name: str
    shard: str
    index: int
    port: int
    role: Role
    needs_rebuild: bool = False


@dataclass
class ClusterState:
    """What ``cluster.json`` holds."""

    base_port: int
    durability: Durability
    shards: list[str]
    region_shards: dict[str, str]
    # Secrets stay out of repr() (found by tests/integration/reliability/test_secrets.py:
    # the dataclass repr printed every password of the cluster).
    superuser_password: str = field(repr=False)
    replication_password: str = field(repr=False)
    owner_password: str = field(repr=False)
    app_password: str = field(repr=False)
    email_hash_key: str = field(repr=False)
    nodes: list[NodeSpec] = field(default_factory=list)
    version: int = 1
    # Generated on first use, so an inventory written before the analyst role existed loads.
    analyst_password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.analyst_password:
            self.analyst_password = secrets.token_urlsafe(24)

    @classmethod
    def fresh(cls, base_port: int, durability: Durability, shards: list[str]) -> ClusterState:
        region_shards = {r.value: s for r, s in DEFAULT_REGION_SHARDS.items()}
        if set(region_shards.values()) != set(shards):
            raise InvalidInput(
                f"the embedded cluster serves the shards {', '.join(DEFAULT_SHARDS)}"
            )
        return cls(
            base_port=base_port,
            durability=durability,
            shards=list(shards),
            region_shards=region_shards,
            superuser_password=secrets.token_urlsafe(24),
            replication_password=secrets.token_urlsafe(24),
            owner_password=secrets.token_urlsafe(24),
            app_password=secrets.token_urlsafe(24),
            email_hash_key=secrets.token_hex(32),
        )

    @classmethod
    def load(cls, path: Path) -> ClusterState:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["nodes"] = [NodeSpec(**n) for n in data.get("nodes", [])]
        return cls(**data)

    def nodes_of(self, shard: str) -> list[NodeSpec]:
        return sorted((n for n in self.nodes if n.shard == shard), key=lambda n: n.index)

    def primary_of(self, shard: str) -> NodeSpec:
        for node in self.nodes_of(shard):
            if node.role == "primary":
                return node
        raise ConfigurationError(f"shard {shard!r} has no primary in the cluster inventory")

    def replicas_of(self, shard: str) -> list[NodeSpec]:
        return [n for n in self.nodes_of(shard) if n.role == "replica"]


@dataclass(frozen=True)
class NodeStatus:
    """Live state of one node (``elearn cluster status --json`` prints these)."""

    shard: str
    name: str
    role: Role
    host: str
    port: int
    dbname: str
    data_dir: str
    up: bool
    in_recovery: bool | None
    replay_lag_bytes: int | None
    sync_state: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _write_private(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def _scram_matches(verifier: str | None, password: str) -> bool:
    """Return True when the stored SCRAM-SHA-256 ``verifier`` was made from ``password``.

    ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (RFC 5802/7677):
    StoredKey = H(HMAC(SaltedPassword, "Client Key")), computed here, client-side.
    PostgreSQL prepares passwords with SASLprep; ours are ASCII, for which it is
    the identity.
    """
    if not verifier or not verifier.startswith("SCRAM-SHA-256$"):
        return False
    try:
        params, keys = verifier[len("SCRAM-SHA-256$") :].split("$", 1)
        iterations, salt = params.split(":", 1)
        stored_key = base64.b64decode(keys.split(":", 1)[0])
        salted = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations)
        )
    except (ValueError, TypeError):
        return False
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


def _set_password(conn: Any, role: str, password: str) -> bool:
    """Give ``role`` ``password`` unless it has it already; return True when it changed.

    The password never travels as SQL text: the SCRAM verifier is computed
    client-side (libpq's PQencryptPasswordConn) and only the verifier is sent.
    ``conn`` is a superuser connection (pg_authid is readable by superusers only).
    """
    with conn.cursor() as cur:
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        row = cur.fetchone()
        if row is not None and _scram_matches(row[0], password):
            return False
        verifier = psycopg2.extensions.encrypt_password(password, role, conn, "scram-sha-256")
        cur.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
        )
    return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def ephemeral_port_range() -> tuple[int, int]:
    """Return the kernel's range of ports for outgoing connections (Linux's default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _range_free(base: int, span: int) -> bool:
    return all(_port_free(p) for p in range(base, base + span))


def first_free_base_port(
    start: int = DEFAULT_BASE_PORT, end: int = MAX_SERVER_PORT + 1, span: int = 30
) -> int:
    """Return the first base port from ``start`` whose ``span`` ports are all free.

    What ``elearn up`` uses when no ``--base-port`` is given: the same range on
    every machine where it is free, and never a port at or above ``end``.
    """
    for base in range(start, end - span + 1, PORTS_PER_SHARD):
        if _range_free(base, span):
            return base
    raise ConfigurationError(
        f"no {span} free ports on {HOST} between {start} and {end - 1}; "
        f"free some, or pass --base-port P (below {MAX_SERVER_PORT + 1})"
    )


def find_free_base_port(start: int = 10000, end: int = DEFAULT_BASE_PORT, span: int = 40) -> int:
    """Return a random base port whose next ``span`` ports are free (for tests and CI).

    Random, below ``DEFAULT_BASE_PORT`` by default, so that test clusters and the
    default cluster of ``elearn up`` do not race for the same ports.
    """
    rng = secrets.SystemRandom()
    for _ in range(200):
        base = rng.randrange(start, end - span, PORTS_PER_SHARD)
        if _range_free(base, span):
            return base
    raise ConfigurationError(f"no free range of ports found on {HOST} between {start} and {end}")


def _busy_port_message(port: int, *, fresh: bool, chosen: bool) -> str:
    low, high = ephemeral_port_range()
    why = ""
    if low <= port <= high:
        why = (
            f" (it lies in the ephemeral range {low}-{high}, where outgoing connections "
            "take ports: keep server ports below it)"
        )
    if fresh and chosen:
        return (
            f"port {port} on {HOST} is in use{why}; pass another --base-port P "
            f"(below {MAX_SERVER_PORT + 1}), or leave --base-port out to pick a free range"
        )
    if fresh:
        return f"port {port} on {HOST} was taken while the cluster was planned; run it again"
    return (
        f"port {port} on {HOST} is in use{why}; it belongs to this cluster: stop what "
        f"holds it (`ss -ltnp 'sport = :{port}'` names it) and run the command again"
    )


class LocalCluster:
    """Build, start, stop, promote and inspect the embedded cluster under ``home``."""

    def __init__(self, home: Path, *, fsync_initdb: bool = True) -> None:
        self.home = Path(home).expanduser().absolute()
        self.pg_root = self.home / "pg"
        self.state_path = self.home / STATE_FILE_NAME
        self.settings_path = self.home / SETTINGS_FILE_NAME
        self._fsync_initdb = fsync_initdb
        self._user = ServerUser.current()
        self._base_port_chosen = False

    # ------------------------------------------------------------------ state

    @property
    def exists(self) -> bool:
        return self.state_path.is_file()

    def state(self) -> ClusterState:
        """Return the inventory.

        Raises:
            ConfigurationError: there is no cluster under this ELEARN_HOME.
        """
        if not self.exists:
            raise ConfigurationError(
                f"no embedded cluster under {self.home}: run `elearn up` to build one "
                "(or point ELEARN_HOME at the folder that holds one)"
            )
        return ClusterState.load(self.state_path)

    def _save(self, state: ClusterState) -> None:
        _write_private(self.state_path, asdict(state))
        _write_private(self.settings_path, self._settings_payload(state))
        if self.backup_conf.is_file():
            # pgBackRest backs up the current primaries: follow a failover.
            from elearn_data.cluster.backup import Backups  # noqa: PLC0415 - cycle

            Backups(self).write_conf(state)

    def _settings_payload(self, state: ClusterState) -> dict[str, Any]:
        shards: dict[str, Any] = {}
        for shard in state.shards:
            primary = state.primary_of(shard)
            ordered = [primary] + [n for n in state.nodes_of(shard) if n is not primary]
            hosts = ",".join(f"{HOST}:{n.port}" for n in ordered)
            shards[shard] = {
                # Every node of the shard, primary first: libpq walks the list and
                # keeps the one that accepts writes, so a promotion is followed.
                "primary": f"postgresql://{APP_USER}@{hosts}/{DBNAME}"
                "?target_session_attrs=read-write",
                "replicas": [
                    f"postgresql://{APP_USER}@{HOST}:{n.port}/{DBNAME}?target_session_attrs=standby"
                    for n in state.replicas_of(shard)
                    if not n.needs_rebuild
                ],
                # Fenced by a failover until `cluster up` rebuilds them: the health
                # report keeps them as rows and calls the shard degraded.
                "out_of_service": [
                    f"postgresql://{APP_USER}@{HOST}:{n.port}/{DBNAME}?target_session_attrs=standby"
                    for n in state.replicas_of(shard)
                    if n.needs_rebuild
                ],
            }
        return {
            "shards": shards,
            "region_shards": state.region_shards,
            "db_password": state.app_password,
            "app_user": APP_USER,
            # Not the owner's password: migrations read it from cluster.json.
            "owner_user": OWNER_USER,
            "email_hash_key": state.email_hash_key,
            "durability": state.durability,
            "analyst_user": ANALYST_USER,
            "analyst_password": state.analyst_password,
        }

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "cluster.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def data_dir(self, node: NodeSpec) -> Path:
        return self.pg_root / node.name

    def log_file(self, node: NodeSpec) -> Path:
        return self.pg_root / f"{node.name}.log"

    # ------------------------------------------------------------- primitives

    def _pg(self, binary: str) -> str:
        return str(find_bindir() / binary)

    def _initialized(self, node: NodeSpec) -> bool:
        return (self.data_dir(node) / "PG_VERSION").is_file()

    def is_running(self, node: NodeSpec) -> bool:
        """Return True when the node's postmaster is alive (``pg_ctl status``)."""
        if not self._initialized(node):
            return False
        proc = self._user.run(
            [self._pg("pg_ctl"), "status", "-D", str(self.data_dir(node))], check=False
        )
        return proc.returncode == 0

    def _conf_text(self, state: ClusterState, node: NodeSpec) -> str:
        sync_names = self._sync_standby_names(state, node)
        lines = [
            "# Written by elearn_data; rewritten by `elearn cluster up`.",
            f"listen_addresses = '{HOST}'",
            f"port = {node.port}",
            "unix_socket_directories = ''",
            f"cluster_name = '{node.name}'",
            "max_connections = 300",
            "shared_buffers = '64MB'",
            "max_prepared_transactions = 150",
            "wal_level = replica",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "wal_keep_size = '128MB'",
            "hot_standby = on",
            "hot_standby_feedback = on",
            "wal_receiver_status_interval = '1s'",
            "password_encryption = 'scram-sha-256'",
            "synchronous_commit = on",
            f"synchronous_standby_names = '{sync_names}'",
            "log_min_messages = warning",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            # Errors are logged without the failing statement, its DETAIL
            # ("Failing row contains (...)", "Key (email)=(...)") or bound
            # parameters: a user's values never reach the server log.
            "log_min_error_statement = panic",
            "log_error_verbosity = terse",
            "log_parameter_max_length = 0",
            "log_parameter_max_length_on_error = 0",
            # Statement statistics for `elearn top` (needs a restart to load).
            "shared_preload_libraries = 'pg_stat_statements'",
            "pg_stat_statements.track = top",
            *self._archive_conf(node),
        ]
        return "\n".join(lines) + "\n"

    @property
    def backup_conf(self) -> Path:
        """pgBackRest's configuration file (exists once `elearn backup init` ran)."""
        return self.home / BACKUP_DIR_NAME / BACKUP_CONF_NAME

    @property
    def socket_dir(self) -> Path:
        """The private Unix-socket folder pgBackRest connects through (0700, server user)."""
        return self.pg_root / SOCKET_DIR_NAME

    def _archive_conf(self, node: NodeSpec) -> list[str]:
        """WAL archiving into the pgBackRest repository, once backups are initialised.

        Every node gets the same lines: archiving only runs on a primary, so a
        promoted replica archives from the moment it is promoted. The socket
        folder is private to the server user; pgBackRest connects through it
        with peer authentication, so no password is involved.
        """
        if not self.backup_conf.is_file():
            return []
        command = f"pgbackrest --config={self.backup_conf} --stanza={node.shard} archive-push %p"
        return [
            f"unix_socket_directories = '{self.socket_dir}'",
            "archive_mode = on",
            f"archive_command = '{command}'",
        ]

    def _sync_standby_names(self, state: ClusterState, node: NodeSpec) -> str:
        if state.durability != "sync" or node.role != "primary":
            return ""
        standbys = [n.name for n in state.replicas_of(node.shard) if not n.needs_rebuild]
        if not standbys:
            # No standby to wait for: waiting would block every commit forever.
            return ""
        quoted = ", ".join(f'"{name}"' for name in standbys)
        return f"ANY 1 ({quoted})"

    def _write_conf(self, state: ClusterState, node: NodeSpec) -> None:
        path = self.data_dir(node) / CONF_NAME
        path.write_text(self._conf_text(state, node), encoding="utf-8")
        self._user.chown(path)
        main_conf = self.data_dir(node) / "postgresql.conf"
        text = main_conf.read_text(encoding="utf-8")
        include = f"include_if_exists = '{CONF_NAME}'"
        if include not in text:
            main_conf.write_text(text + f"\n{include}\n", encoding="utf-8")
        self._write_hba(node)

    # ---------------------------------------------------------- access rules

    def extra_databases(self) -> list[str]:
        """Databases besides ``elearn`` the owner and the application role may connect to."""
        path = self.pg_root / EXTRA_DATABASES_FILE
        if not path.is_file():
            return []
        return sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})

    def hba_rules(self) -> list[tuple[str, str, str, str, str]]:
        """Return pg_hba.conf's rules: one per role and database, TCP on 127.0.0.1 only.

        Only the replication role may open replication connections; the owner,
        the application role and the analyst role reach the platform's database
        (and registered scratch databases), never ``postgres`` or the templates;
        the superuser administers every database.
        """
        address = f"{HOST}/32"
        scram = "scram-sha-256"
        databases = [DBNAME, *self.extra_databases()]
        rules = [
            ("local", "all", SUPERUSER, "", "peer"),
            ("host", "all", SUPERUSER, address, scram),
            ("host", "replication", REPLICATION_USER, address, scram),
        ]
        for role in (OWNER_USER, APP_USER, ANALYST_USER):
            rules += [("host", database, role, address, scram) for database in databases]
        return rules

    def _write_hba(self, node: NodeSpec) -> None:
        lines = ["# Written by elearn_data (LocalCluster.hba_rules); rewritten by `cluster up`."]
        lines += ["  ".join(part for part in rule if part) for rule in self.hba_rules()]
        path = self.data_dir(node) / HBA_NAME
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._user.chown(path)
        os.chmod(path, 0o600)

    def allow_database(self, dbname: str) -> None:
        """Let the owner and the application role connect to ``dbname`` (a scratch database).

        Rewrites pg_hba.conf on every node, reloads the running ones and waits
        until each has loaded the new rules.
        """
        self._set_extra_database(dbname, present=True)

    def forbid_database(self, dbname: str) -> None:
        """Undo :meth:`allow_database`."""
        self._set_extra_database(dbname, present=False)

    def _set_extra_database(self, dbname: str, *, present: bool) -> None:
        with self._locked():
            names = set(self.extra_databases())
            names = names | {dbname} if present else names - {dbname}
            path = self.pg_root / EXTRA_DATABASES_FILE
            path.write_text("".join(f"{n}\n" for n in sorted(names)), encoding="utf-8")
            state = ClusterState.load(self.state_path)
            for node in state.nodes:
                if not self._initialized(node):
                    continue
                self._write_hba(node)
                if self.is_running(node):
                    self._reload_and_wait(node)

    def _reload_and_wait(self, node: NodeSpec, timeout: float = 30) -> None:
        """Reload ``node`` and wait until a new session sees the reloaded configuration."""

        def load_time() -> Any:
            conn = self.admin_connect(node)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_conf_load_time()")
                    row = cur.fetchone()
                    return row[0] if row else None
            finally:
                conn.close()

        before = load_time()
        self._reload(node)
        deadline = time.monotonic() + timeout
        while load_time() == before:
            if time.monotonic() > deadline:
                raise ConfigurationError(f"{node.name} did not reload its configuration")
            time.sleep(0.02)

    def prepare_database(self, node: NodeSpec, dbname: str) -> None:
        """Make ``dbname`` on ``node`` (a primary) a database the platform's roles can use.

        The one recipe for the platform's database (``elearn``), the benchmark's
        scratch databases and the tests' scratch databases: created if missing,
        owned by the schema owner (who runs the migrations), the database rights
        of :meth:`secure_database`, and its ``public`` schema owned by the schema
        owner, usable by the application role and closed to PUBLIC (DDL for the
        owner only). Idempotent. The roles must exist (:meth:`up` creates them);
        connecting also needs a pg_hba rule (:meth:`allow_database` for a
        database other than ``elearn``).
        """
        db, owner = sql.Identifier(dbname), sql.Identifier(OWNER_USER)
        conn = self.admin_connect(node)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, owner))
                else:
                    cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, owner))
        finally:
            conn.close()
        self.secure_database(node, dbname)
        conn = self.admin_connect(node, dbname=dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
                cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
                cur.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(APP_USER))
                )
        finally:
            conn.close()

    def secure_database(self, node: NodeSpec, dbname: str) -> None:
        """Give ``dbname`` the platform's database rights (run on a primary, as the superuser).

        PUBLIC may neither connect, create schemas nor create temporary tables;
        the application role may connect. The owner has every right as the
        database's owner.
        """
        conn = self.admin_connect(node)
        try:
            with conn.cursor() as cur:
                db, app = sql.Identifier(dbname), sql.Identifier(APP_USER)
                cur.execute(
                    sql.SQL("REVOKE CONNECT, CREATE, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                        db
                    )
                )
                cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, app))
                # The analyst role of db.analytics.sql reads scratch databases too
                # (the bench); it exists once the platform's database is set up.
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ANALYST_USER,))
                if cur.fetchone() is not None:
                    cur.execute(
                        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                            db, sql.Identifier(ANALYST_USER)
                        )
                    )
        finally:
            conn.close()

    def _start(self, node: NodeSpec) -> None:
        self._user.run(
            [
                self._pg("pg_ctl"),
                "start",
                "-D",
                str(self.data_dir(node)),
                "-l",
                str(self.log_file(node)),
                "-w",
                "-t",
                "120",
            ],
            timeout=180,
        )

    def _stop(self, node: NodeSpec, mode: str = "fast") -> None:
        if not self.is_running(node):
            return
        self._user.run(
            [
                self._pg("pg_ctl"),
                "stop",
                "-D",
                str(self.data_dir(node)),
                "-m",
                mode,
                "-w",
                "-t",
                "120",
            ],
            timeout=180,
        )

    def _reload(self, node: NodeSpec) -> None:
        if self.is_running(node):
            self._user.run([self._pg("pg_ctl"), "reload", "-D", str(self.data_dir(node))])

    def admin_connect(self, node: NodeSpec, dbname: str = "postgres", timeout: int = 3) -> Any:
        """Return a psycopg2 connection as the cluster superuser (autocommit)."""
        state = self.state()
        conn = psycopg2.connect(
            host=HOST,
            port=node.port,
            user=SUPERUSER,
            password=state.superuser_password,
            dbname=dbname,
            connect_timeout=timeout,
            application_name="elearn-cluster",
        )
        conn.autocommit = True
        return conn

    # ------------------------------------------------------------ build steps

    def _initdb(self, state: ClusterState, node: NodeSpec) -> None:
        data = self.data_dir(node)
        if data.exists():
            shutil.rmtree(data)
        pwfile = self.pg_root / f".{node.name}.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(state.superuser_password + "\n")
        self._user.chown(pwfile)
        try:
            argv = [
                self._pg("initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "--encoding=UTF8",
                "--no-locale",
            ]
            if not self._fsync_initdb:
                argv.append("--no-sync")
            self._user.run(argv)
        finally:
            pwfile.unlink(missing_ok=True)

    def _bootstrap_roles(self, state: ClusterState, node: NodeSpec) -> None:
        conn = self.admin_connect(node)
        try:
            with conn.cursor() as cur:
                for role, password, extra in (
                    (OWNER_USER, state.owner_password, sql.SQL("")),
                    (APP_USER, state.app_password, sql.SQL("")),
                    (REPLICATION_USER, state.replication_password, sql.SQL(" REPLICATION")),
                ):
                    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                    if cur.fetchone() is None:
                        cur.execute(
                            sql.SQL("CREATE ROLE {} LOGIN{}").format(sql.Identifier(role), extra)
                        )
                    _set_password(conn, role, password)
                # What the application role needs of the replication statistics it
                # reads through the owner's SECURITY DEFINER functions (revision
                # 0005); pg_monitor would add pg_read_all_settings, which shows
                # every setting, and other roles' query text.
                cur.execute(
                    sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(OWNER_USER))
                )
                # Clusters built by older versions granted it to the application role.
                cur.execute(
                    "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                    "JOIN pg_roles u ON u.oid = m.member "
                    "WHERE r.rolname = 'pg_monitor' AND u.rolname = %s",
                    (APP_USER,),
                )
                if cur.fetchone() is not None:
                    cur.execute(
                        sql.SQL("REVOKE pg_monitor FROM {}").format(sql.Identifier(APP_USER))
                    )
                # Nobody but the superuser needs the maintenance database or the
                # templates (CREATE DATABASE copies a template without connecting).
                for maintenance in ("postgres", "template1"):
                    cur.execute(
                        sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                            sql.Identifier(maintenance)
                        )
                    )
        finally:
            conn.close()
        self.prepare_database(node, DBNAME)
        conn = self.admin_connect(node, dbname=DBNAME)
        try:
            with conn.cursor() as cur:
                app = sql.Identifier(APP_USER)
                # Statement statistics (`elearn top`), in a schema of their own: the
                # extension's functions belong to the superuser, and the migrations
                # grant the app role EXECUTE on every function of `public`. The view
                # shows a role only its own statements' text.
                stats = sql.Identifier(STATS_SCHEMA)
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(stats))
                cur.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA {}").format(
                        stats
                    )
                )
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(stats, app))
        finally:
            conn.close()
        self._bootstrap_analyst(state, node)

    def _bootstrap_analyst(self, state: ClusterState, node: NodeSpec) -> None:
        """Create (or refresh) the analyst role: login, read-only, no rights on its own.

        Its table rights are column grants made by the migrations (revision 0007 and
        ``env.py`` after every run); here only what is cluster-wide: the role, its
        password (a SCRAM verifier computed here, sent only when it changes), its
        per-statement ceiling, read-only transactions and CONNECT on the database
        (its pg_hba rule is in :meth:`hba_rules`).
        """
        conn = self.admin_connect(node)
        try:
            with conn.cursor() as cur:
                role = sql.Identifier(ANALYST_USER)
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ANALYST_USER,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
                cur.execute(
                    sql.SQL(
                        "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                        "NOREPLICATION NOBYPASSRLS"
                    ).format(role)
                )
                _set_password(conn, ANALYST_USER, state.analyst_password)
                cur.execute(
                    sql.SQL("ALTER ROLE {} SET statement_timeout = %s").format(role),
                    (ANALYST_STATEMENT_TIMEOUT,),
                )
                cur.execute(
                    sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role)
                )
                cur.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(DBNAME), role
                    )
                )
        finally:
            conn.close()

    def _build_primary(self, state: ClusterState, node: NodeSpec, progress: Progress) -> None:
        progress(f"{node.name}: initdb (primary of shard {node.shard}, port {node.port})")
        self._initdb(state, node)
        self._write_conf(state, node)
        self._start(node)
        self._bootstrap_roles(state, node)

    def _drop_slot(self, primary: NodeSpec, slot: str) -> None:
        conn = self.admin_connect(primary)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active",
                    (slot,),
                )
        finally:
            conn.close()

    def _build_replica(
        self, state: ClusterState, primary: NodeSpec, node: NodeSpec, progress: Progress
    ) -> None:
        progress(f"{node.name}: pg_basebackup from {primary.name} (replica, port {node.port})")
        data = self.data_dir(node)
        self._stop(node, "immediate")
        if data.exists():
            shutil.rmtree(data)
        slot = node.name.replace("-", "_")
        self._drop_slot(primary, slot)
        self._user.run(
            [
                self._pg("pg_basebackup"),
                "-D",
                str(data),
                "-h",
                HOST,
                "-p",
                str(primary.port),
                "-U",
                REPLICATION_USER,
                "-X",
                "stream",
                "-c",
                "fast",
                "-R",
                "-C",
                "-S",
                slot,
                "--no-password",
            ],
            env={"PGPASSFILE": str(self._replication_passfile(state))},
            timeout=600,
        )
        self._write_standby_settings(primary, node)
        node.needs_rebuild = False
        self._write_conf(state, node)
        self._start(node)

    def _replication_passfile(self, state: ClusterState) -> Path:
        """Write (if needed) and return the libpq passfile of the replication role (0600)."""
        path = self.pg_root / REPLICATION_PASSFILE
        # host:port:database:user:password (the role may only open replication
        # connections anyway). token_urlsafe passwords need no escaping.
        line = f"{HOST}:*:*:{REPLICATION_USER}:{state.replication_password}\n"
        if path.is_file() and path.read_text(encoding="utf-8") == line:
            return path
        # Shards are built in parallel threads: write a private temporary file and
        # rename it, so a concurrent pg_basebackup never reads a half-written one.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(line)
        self._user.chown(tmp)
        os.replace(tmp, path)
        return path

    def _write_standby_settings(self, primary: NodeSpec, node: NodeSpec) -> None:
        """Point the standby ``node`` at ``primary``: primary_conninfo names the passfile.

        Whatever primary_conninfo an earlier version or ``pg_basebackup -R``
        wrote (with a password inside) is removed, so no setting a role with
        pg_read_all_settings could read holds the replication password.
        """
        slot = node.name.replace("-", "_")
        passfile = self.pg_root / REPLICATION_PASSFILE
        # application_name lets the primary name this standby in synchronous_standby_names.
        conninfo = (
            f"host={HOST} port={primary.port} user={REPLICATION_USER} "
            f"passfile={passfile} application_name={node.name}"
        )
        auto = self.data_dir(node) / "postgresql.auto.conf"
        kept = [
            line
            for line in (auto.read_text(encoding="utf-8").splitlines() if auto.exists() else [])
            if not line.startswith(("primary_conninfo", "primary_slot_name"))
        ]
        kept += [f"primary_conninfo = '{conninfo}'", f"primary_slot_name = '{slot}'"]
        auto.write_text("\n".join(kept) + "\n", encoding="utf-8")
        self._user.chown(auto)
        os.chmod(auto, 0o600)

    def _wait_streaming(self, state: ClusterState, shard: str, timeout: float = 60) -> None:
        primary = state.primary_of(shard)
        expected = {n.name for n in state.replicas_of(shard) if not n.needs_rebuild}
        if not expected:
            return
        deadline = time.monotonic() + timeout
        while True:
            conn = self.admin_connect(primary)
            try:
                with conn.cursor() as cur:
                    # In sync mode a standby only counts once the primary waits for it.
                    cur.execute(
                        "SELECT application_name FROM pg_stat_replication "
                        "WHERE state = 'streaming' AND (%s OR sync_state IN ('sync', 'quorum'))",
                        (state.durability != "sync",),
                    )
                    streaming = {row[0] for row in cur.fetchall()}
            finally:
                conn.close()
            if expected <= streaming:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(expected - streaming))
                raise ConfigurationError(
                    f"replica(s) {missing} of shard {shard!r} are not streaming"
                )
            time.sleep(0.05)

    # ----------------------------------------------------------------- public

    def up(
        self,
        *,
        replicas: int = 1,
        base_port: int | None = None,
        durability: Durability | None = None,
        progress: Progress = _no_progress,
    ) -> list[NodeStatus]:
        """Build what is missing, start what is stopped, and return the status.

        A second call changes nothing but starting stopped nodes and rebuilding
        replicas that a failover left behind. ``replicas`` only ever adds
        replicas; ``base_port`` only matters on the first build.
        """
        if replicas < 0 or replicas > PORTS_PER_SHARD - 1:
            raise InvalidInput(f"replicas must be between 0 and {PORTS_PER_SHARD - 1}: {replicas}")
        with self._locked():
            self._prepare_root()
            if self.exists:
                state = ClusterState.load(self.state_path)
                if base_port is not None and base_port != state.base_port:
                    log.warning(
                        "cluster under %s already uses base port %d; ignoring --base-port %d",
                        self.home,
                        state.base_port,
                        base_port,
                    )
                if durability is not None:
                    state.durability = durability
            else:
                shards = list(DEFAULT_SHARDS)
                if base_port is None:
                    port0 = first_free_base_port(span=len(shards) * PORTS_PER_SHARD)
                    progress(f"ports: {port0}-{port0 + len(shards) * PORTS_PER_SHARD - 1} (free)")
                else:
                    port0 = base_port
                    low, high = ephemeral_port_range()
                    if port0 + len(shards) * PORTS_PER_SHARD > low and port0 <= high:
                        log.warning(
                            "--base-port %d lies in the ephemeral range %d-%d: an outgoing "
                            "connection can take a server's port; prefer a base port below %d",
                            port0,
                            low,
                            high,
                            low - len(shards) * PORTS_PER_SHARD,
                        )
                state = ClusterState.fresh(port0, durability or "async", shards)
                self._base_port_chosen = base_port is not None
            self._plan_nodes(state, replicas)
            self._save(state)
            with ThreadPoolExecutor(max_workers=len(state.shards)) as pool:
                list(pool.map(lambda s: self._up_shard(state, s, progress), state.shards))
            self._save(state)
        return self.status()

    def _prepare_root(self) -> None:
        """Create ``pg/`` for the server user (0700) and make ELEARN_HOME reachable to it."""
        self.pg_root.mkdir(parents=True, exist_ok=True)
        self._user.chown(self.pg_root)
        os.chmod(self.pg_root, 0o700)
        self._user.make_reachable(self.pg_root)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._user.chown(self.socket_dir)

    def _plan_nodes(self, state: ClusterState, replicas: int) -> None:
        for shard_index, shard in enumerate(state.shards):
            existing = {n.index for n in state.nodes_of(shard)}
            if not existing:
                state.nodes.append(self._new_node(state, shard, shard_index, 0, "primary"))
                existing = {0}
            have = len(existing) - 1
            next_index = max(existing) + 1
            while have < replicas:
                state.nodes.append(self._new_node(state, shard, shard_index, next_index, "replica"))
                next_index += 1
                have += 1

    def _new_node(
        self, state: ClusterState, shard: str, shard_index: int, index: int, role: Role
    ) -> NodeSpec:
        port = state.base_port + shard_index * PORTS_PER_SHARD + index
        if not _port_free(port):
            raise ConfigurationError(
                _busy_port_message(port, fresh=not self.exists, chosen=self._base_port_chosen)
            )
        return NodeSpec(name=f"{shard}-{index}", shard=shard, index=index, port=port, role=role)

    def _up_shard(self, state: ClusterState, shard: str, progress: Progress) -> None:
        primary = state.primary_of(shard)
        if not self._initialized(primary):
            self._build_primary(state, primary, progress)
        else:
            self._write_conf(state, primary)
            if not self.is_running(primary):
                progress(f"{primary.name}: starting (primary of shard {shard})")
                self._start(primary)
            else:
                self._reload(primary)
            # Idempotent: re-applies roles and grants a newer version may add.
            self._bootstrap_roles(state, primary)
        self._replication_passfile(state)
        for node in state.replicas_of(shard):
            if node.needs_rebuild or not self._initialized(node):
                self._build_replica(state, primary, node, progress)
            elif not self.is_running(node):
                progress(f"{node.name}: starting (replica of shard {shard})")
                self._write_standby_settings(primary, node)
                self._write_conf(state, node)
                self._start(node)
            else:
                # primary_conninfo is reloadable: a running standby picks it up.
                self._write_standby_settings(primary, node)
                self._write_conf(state, node)
                self._reload(node)
        # Standbys exist now: a sync-mode primary may start waiting for them.
        self._write_conf(state, primary)
        self._reload(primary)
        self._wait_streaming(state, shard)

    def down(self, *, purge: bool = False) -> None:
        """Stop every node; with ``purge`` delete the data and the settings too."""
        if not self.exists:
            if purge and self.pg_root.exists():
                shutil.rmtree(self.pg_root)
            return
        with self._locked():
            state = ClusterState.load(self.state_path)
            with ThreadPoolExecutor(max_workers=max(1, len(state.nodes))) as pool:
                list(pool.map(lambda n: self._stop(n, "fast"), state.nodes))
            if purge:
                shutil.rmtree(self.pg_root, ignore_errors=True)
                self.state_path.unlink(missing_ok=True)
                self.settings_path.unlink(missing_ok=True)

    def _select(self, state: ClusterState, shard: str, role: Role) -> list[NodeSpec]:
        if shard not in state.shards:
            raise InvalidInput(f"unknown shard {shard!r}; shards: {', '.join(state.shards)}")
        return [n for n in state.nodes_of(shard) if n.role == role]

    def stop(self, shard: str, role: Role, *, mode: str = "fast") -> list[NodeSpec]:
        """Stop the shard's node(s) with ``role``; ``mode='immediate'`` kills them."""
        state = self.state()
        nodes = self._select(state, shard, role)
        for node in nodes:
            self._stop(node, mode)
        return nodes

    def start(self, shard: str, role: Role) -> list[NodeSpec]:
        """Start the shard's stopped node(s) with ``role``."""
        state = self.state()
        nodes = self._select(state, shard, role)
        for node in nodes:
            if node.needs_rebuild:
                raise ConfigurationError(
                    f"{node.name} was the primary before a failover; rebuild it with "
                    "`elearn cluster up`"
                )
            if not self.is_running(node):
                self._start(node)
        return nodes

    def failover(self, shard: str, *, progress: Progress = _no_progress) -> NodeSpec:
        """Promote the shard's first running replica; the old primary must be rebuilt.

        The old primary is stopped first (fencing: two writable primaries must never
        run at once). It is marked for rebuilding, and so are the other replicas of
        the shard; ``elearn cluster up`` re-creates them from the new primary.

        Raises:
            ConfigurationError: the shard has no running replica to promote.
        """
        with self._locked():
            state = ClusterState.load(self.state_path)
            old = state.primary_of(shard)
            candidates = [
                n for n in state.replicas_of(shard) if not n.needs_rebuild and self.is_running(n)
            ]
            if not candidates:
                raise ConfigurationError(f"shard {shard!r} has no running replica to promote")
            new = candidates[0]
            progress(f"{old.name}: stopping the old primary")
            self._stop(old, "fast")
            progress(f"{new.name}: promoting")
            self._user.run(
                [self._pg("pg_ctl"), "promote", "-D", str(self.data_dir(new)), "-w", "-t", "60"]
            )
            for node in state.nodes_of(shard):
                if node is new:
                    node.role = "primary"
                else:
                    node.role = "replica"
                    node.needs_rebuild = True
                    self._stop(node, "fast")
            self._write_conf(state, new)
            self._reload(new)
            self._wait_writable(new)
            self._save(state)
            return replace(new)

    def _wait_writable(self, node: NodeSpec, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.probe(node).writable:
            if time.monotonic() > deadline:
                raise ConfigurationError(f"{node.name} did not leave recovery after promotion")
            time.sleep(0.05)

    def restart_all(self) -> None:
        """Rewrite every node's settings and restart the running nodes, shard by shard.

        For settings PostgreSQL reads only at start (``archive_mode``,
        ``shared_preload_libraries``); each node is down for about a second.
        """
        with self._locked():
            state = ClusterState.load(self.state_path)
            for shard in state.shards:
                for node in state.nodes_of(shard):
                    if node.needs_rebuild or not self._initialized(node):
                        continue
                    self._write_conf(state, node)
                    if self.is_running(node):
                        self._stop(node, "fast")
                        self._start(node)
                self._wait_streaming(state, shard)

    def set_durability(self, mode: Durability) -> None:
        """Switch every primary between ``async`` and ``sync`` replication (reload, no restart)."""
        with self._locked():
            state = ClusterState.load(self.state_path)
            state.durability = mode
            for shard in state.shards:
                primary = state.primary_of(shard)
                self._write_conf(state, primary)
                self._reload(primary)
            self._save(state)

    def status(self) -> list[NodeStatus]:
        """Return the live state of every node, primaries first; never raises for a down node."""
        state = self.state()
        with ThreadPoolExecutor(max_workers=max(1, len(state.nodes))) as pool:
            found = dict(
                zip((n.name for n in state.nodes), pool.map(self._probe, state.nodes), strict=True)
            )
        result: list[NodeStatus] = []
        for shard in state.shards:
            primary = state.primary_of(shard)
            primary_probe, sync_states = found[primary.name]
            for node in [primary, *[n for n in state.nodes_of(shard) if n is not primary]]:
                probe, _ = found[node.name]
                lag: int | None = None
                if probe.reachable:
                    lag = 0 if node is primary else replay_lag_bytes(primary_probe, probe)
                result.append(
                    NodeStatus(
                        shard=shard,
                        name=node.name,
                        role=node.role,
                        host=HOST,
                        port=node.port,
                        dbname=DBNAME,
                        data_dir=str(self.data_dir(node)),
                        up=probe.reachable,
                        in_recovery=probe.in_recovery,
                        replay_lag_bytes=lag,
                        sync_state=sync_states.get(node.name),
                        error=probe.error,
                    )
                )
        return result

    def probe(self, node: NodeSpec) -> NodeProbe:
        """Probe ``node`` as the cluster superuser (up, in recovery, WAL position); never raises."""
        return probes.probe(lambda: self.admin_connect(node, timeout=2))

    def _probe(self, node: NodeSpec) -> tuple[NodeProbe, dict[str, str]]:
        """Probe ``node``; of a primary also read its standbys' replication states."""
        sync: dict[str, str] = {}

        def replication_states(conn: Any, probe: NodeProbe) -> None:
            if probe.in_recovery:
                return
            with conn.cursor() as cur:
                cur.execute("SELECT application_name, sync_state FROM pg_stat_replication")
                sync.update({name: st for name, st in cur.fetchall()})

        found = probes.probe(lambda: self.admin_connect(node, timeout=2), replication_states)
        return found, sync if found.reachable else {}
