"""Backups of the embedded cluster with pgBackRest, restorable to one point across all shards.

pgBackRest (Debian's ``pgbackrest``) does the physical work: one *stanza* per
shard in one repository (``ELEARN_HOME/backup/repo`` by default), WAL archived
continuously from every primary (``archive_command`` = ``pgbackrest
archive-push``), full and incremental base backups taken from the primary.

A per-shard backup restored on its own is not enough for a sharded platform: a
cross-shard transaction commits on each shard at a slightly different moment,
so "every shard at 12:00:00" can show an enrollment without its seat. A
**restore point** fixes one cut (Citus's ``citus_create_restore_point``):

1. take the *decision fence* exclusively on every primary
   (:data:`~elearn_data.sharding.twophase.DECISION_FENCE_KEY`; every two-phase
   decision commit takes it in shared mode, single-shard commits never do), so
   no decision lands while the points are made;
2. ``pg_create_restore_point(name)`` on every primary, then switch WAL so the
   point is archived at once;
3. release the fence.

Every two-phase transaction then has its decision entirely before the cut or
entirely after it. Restoring every shard to the point
(``recovery_target_name``) gives prepared transactions whose decision row is
or is not in the restored coordinator; :func:`restore` resolves them by
exactly that record (commit when present, abort otherwise), as live recovery
does, and checks the cross-shard invariants
(:mod:`elearn_data.monitoring.invariants`) before it reports success.

pgBackRest runs as the server's OS user and reaches each server through a
private Unix socket (``ELEARN_HOME/pg/run``, mode 0700) with peer
authentication: no password is written for it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg2
from psycopg2 import sql

from elearn_data.cluster.local import (
    BACKUP_DIR_NAME,
    DBNAME,
    PORTS_PER_SHARD,
    ClusterState,
    LocalCluster,
    NodeSpec,
    find_free_base_port,
)
from elearn_data.errors import (
    ConfigurationError,
    Duplicate,
    InvalidInput,
    InvalidState,
    NotFound,
)
from elearn_data.sharding.twophase import DECISION_FENCE_KEY

log = logging.getLogger(__name__)

BackupKind = Literal["full", "incr", "diff"]
Progress = Callable[[str], None]

REPO_DIR_NAME = "repo"
POINTS_FILE_NAME = "restore_points.json"
# A restore point's name is also a file key and a recovery target: keep it plain.
_POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Free ports for a restored cluster: below the ephemeral range (32768 up).
_RESTORE_PORTS = (20000, 32000)


def _no_progress(_: str) -> None:
    return None


@dataclass(frozen=True)
class BackupInfo:
    """One base backup of one shard (what ``pgbackrest info`` reports)."""

    shard: str
    label: str
    kind: str
    started_at: datetime
    stopped_at: datetime
    size_bytes: int
    repo_bytes: int
    lsn_start: str
    lsn_stop: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "label": self.label,
            "kind": self.kind,
            "started_at": self.started_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat(),
            "size_bytes": self.size_bytes,
            "repo_bytes": self.repo_bytes,
            "lsn_start": self.lsn_start,
            "lsn_stop": self.lsn_stop,
        }


@dataclass(frozen=True)
class RestorePoint:
    """A named cut across every shard."""

    name: str
    created_at: datetime
    lsns: dict[str, str]  # shard -> LSN of the point on that shard's primary
    pause_s: float  # how long two-phase decisions were held back

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "lsns": self.lsns,
            "pause_s": self.pause_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestorePoint:
        return cls(
            name=data["name"],
            created_at=datetime.fromisoformat(data["created_at"]),
            lsns=dict(data["lsns"]),
            pause_s=float(data["pause_s"]),
        )


@dataclass
class RestoreReport:
    """What :func:`Backups.restore` built and found."""

    home: Path
    target: str
    backups: dict[str, str] = field(default_factory=dict)  # shard -> backup label used
    committed: int = 0  # in-doubt transactions committed by their decision record
    rolled_back: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "target": self.target,
            "backups": self.backups,
            "in_doubt_committed": self.committed,
            "in_doubt_rolled_back": self.rolled_back,
            "violations": self.violations,
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
        }


def _lsn_value(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


class Backups:
    """pgBackRest backups of one embedded cluster (``elearn backup ...``)."""

    def __init__(self, cluster: LocalCluster, *, repo: Path | None = None) -> None:
        self.cluster = cluster
        self.root = cluster.home / BACKUP_DIR_NAME
        self.conf = cluster.backup_conf
        self._repo = repo

    # ------------------------------------------------------------- plumbing

    @property
    def initialized(self) -> bool:
        return self.conf.is_file()

    @property
    def repo(self) -> Path:
        if self._repo is not None:
            return Path(self._repo).expanduser().absolute()
        if self.initialized:
            for line in self.conf.read_text(encoding="utf-8").splitlines():
                if line.startswith("repo1-path="):
                    return Path(line.split("=", 1)[1])
        return self.root / REPO_DIR_NAME

    def _require(self) -> ClusterState:
        state = self.cluster.state()
        if not self.initialized:
            raise InvalidState(
                f"backups are not set up under {self.cluster.home}: run `elearn backup init`"
            )
        return state

    def _conf_text(self, state: ClusterState) -> str:
        lines = [
            "# Written by elearn_data (`elearn backup init`); rewritten when the cluster changes.",
            "[global]",
            f"repo1-path={self.repo}",
            "repo1-retention-full=2",
            f"log-path={self.root / 'log'}",
            f"lock-path={self.root / 'lock'}",
            f"spool-path={self.root / 'spool'}",
            "log-level-console=warn",
            "log-level-file=info",
            # A restore point or backup should not wait for the next checkpoint.
            "start-fast=y",
            "compress-type=lz4",
            "process-max=1",
            "",
        ]
        for shard in state.shards:
            primary = state.primary_of(shard)
            lines += [
                f"[{shard}]",
                f"pg1-path={self.cluster.data_dir(primary)}",
                f"pg1-port={primary.port}",
                f"pg1-socket-path={self.cluster.socket_dir}",
                f"pg1-database={DBNAME}",
                "",
            ]
        return "\n".join(lines)

    def write_conf(self, state: ClusterState) -> None:
        """(Re)write pgBackRest's configuration for the current primaries."""
        user = self.cluster._user
        for folder in (self.root, self.repo, self.root / "log", self.root / "lock"):
            folder.mkdir(parents=True, exist_ok=True)
            user.chown(folder)
            folder.chmod(0o700)
        (self.root / "spool").mkdir(exist_ok=True)
        user.chown(self.root / "spool")
        user.make_reachable(self.repo)
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(self._conf_text(state), encoding="utf-8")
        tmp.chmod(0o600)
        user.chown(tmp)
        os.replace(tmp, self.conf)

    def _pgbackrest(self, *args: str, timeout: float = 1800) -> str:
        proc = self.cluster._user.run(
            ["pgbackrest", f"--config={self.conf}", *args], timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise ConfigurationError(
                f"pgbackrest {' '.join(args)} failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc.stdout

    @staticmethod
    def _check_installed() -> None:
        if shutil.which("pgbackrest") is None:
            raise ConfigurationError(
                "pgbackrest is not installed: `apt-get install pgbackrest` (scripts/bootstrap "
                "installs it)"
            )

    # ------------------------------------------------------------ commands

    def init(self, *, progress: Progress = _no_progress) -> None:
        """Create the repository and one stanza per shard; turn on WAL archiving.

        Archiving needs ``archive_mode = on``, which PostgreSQL reads only at
        start: every running node is restarted once (a few seconds without
        writes). Idempotent: a second call only checks.
        """
        self._check_installed()
        state = self.cluster.state()
        fresh = not self.initialized
        self.write_conf(state)
        if fresh:
            progress("restarting every node with WAL archiving on")
            self.cluster.restart_all()
        for shard in state.shards:
            progress(f"{shard}: stanza-create and check")
            self._pgbackrest(f"--stanza={shard}", "stanza-create", timeout=120)
            self._pgbackrest(f"--stanza={shard}", "check", timeout=120)

    def backup(
        self, kind: BackupKind = "full", *, progress: Progress = _no_progress
    ) -> list[BackupInfo]:
        """Take a base backup of every shard's primary (in parallel); return the new backups."""
        if kind not in ("full", "incr", "diff"):
            raise InvalidInput(f"backup kind must be full, incr or diff: {kind!r}")
        state = self._require()
        self.write_conf(state)  # follows a failover: the primary may have moved

        def one(shard: str) -> None:
            progress(f"{shard}: {kind} backup")
            self._pgbackrest(f"--stanza={shard}", f"--type={kind}", "backup")

        with ThreadPoolExecutor(max_workers=len(state.shards)) as pool:
            list(pool.map(one, state.shards))
        latest = {}
        for info in self.list():
            latest[info.shard] = info
        return [latest[s] for s in state.shards if s in latest]

    def list(self) -> list[BackupInfo]:
        """Every base backup in the repository, oldest first per shard."""
        state = self._require()
        found: list[BackupInfo] = []
        for stanza in json.loads(self._pgbackrest("info", "--output=json", timeout=60)):
            shard = stanza["name"]
            if shard not in state.shards:
                continue
            for item in stanza.get("backup", []):
                found.append(
                    BackupInfo(
                        shard=shard,
                        label=item["label"],
                        kind=item["type"],
                        started_at=datetime.fromtimestamp(item["timestamp"]["start"], UTC),
                        stopped_at=datetime.fromtimestamp(item["timestamp"]["stop"], UTC),
                        size_bytes=int(item["info"]["size"]),
                        repo_bytes=int(item["info"]["repository"]["size"]),
                        lsn_start=item["lsn"]["start"],
                        lsn_stop=item["lsn"]["stop"],
                    )
                )
        return found

    # ------------------------------------------------------- restore points

    def restore_points(self) -> dict[str, RestorePoint]:
        path = self.root / POINTS_FILE_NAME
        if not path.is_file():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: RestorePoint.from_dict(item) for name, item in data.items()}

    def _record_point(self, point: RestorePoint) -> None:
        points = {n: p.to_dict() for n, p in self.restore_points().items()}
        points[point.name] = point.to_dict()
        path = self.root / POINTS_FILE_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(points, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @staticmethod
    @contextmanager
    def _fenced(conns: dict[str, Any]) -> Iterator[None]:
        """Hold the decision fence exclusively on every primary (connections opened already)."""
        locked: list[Any] = []
        try:
            for shard in sorted(conns):  # one order: two operators cannot deadlock
                with conns[shard].cursor() as cur:
                    # Waits for decisions in flight (they hold it shared, briefly);
                    # new decisions queue behind it until the release below.
                    cur.execute("SET lock_timeout = '30s'")
                    cur.execute("SELECT pg_advisory_lock(%s)", (DECISION_FENCE_KEY,))
                locked.append(conns[shard])
            yield
        finally:
            for conn in locked:
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT pg_advisory_unlock(%s)", (DECISION_FENCE_KEY,))
                except psycopg2.Error as exc:  # closing the session releases it anyway
                    log.warning("releasing the decision fence failed: %s", exc)

    def restore_point(self, name: str, *, wait_archived_s: float = 60) -> RestorePoint:
        """Create one restore point on every shard at the same cut of two-phase decisions.

        Connections are opened before the fence is taken, so the pause imposed
        on two-phase decisions is the lock round trips plus one
        ``pg_create_restore_point`` per shard (``RestorePoint.pause_s``).

        Raises:
            InvalidInput: a malformed name.
            Duplicate: the name is taken.
        """
        if not _POINT_NAME.match(name):
            raise InvalidInput(
                f"restore point name must be letters, digits, '_', '.', '-' (max 63): {name!r}"
            )
        state = self._require()
        if name in self.restore_points():
            raise Duplicate(f"restore point {name!r} already exists")
        lsns: dict[str, str] = {}
        segments: dict[str, str] = {}
        conns = {
            shard: self.cluster.admin_connect(state.primary_of(shard), dbname=DBNAME)
            for shard in state.shards
        }
        try:
            # From the first lock request (new decisions queue behind it from then
            # on) to the release: the longest a two-phase decision is held back.
            started = time.monotonic()
            with self._fenced(conns):
                for shard, conn in conns.items():
                    with conn.cursor() as cur:
                        cur.execute("SELECT pg_create_restore_point(%s)::text", (name,))
                        row = cur.fetchone()
                        assert row is not None
                        lsns[shard] = row[0]
            pause = time.monotonic() - started
            # After the release: switching WAL closes the segment holding the point,
            # so the archiver ships it now rather than at the next 16 MiB.
            for shard, conn in conns.items():
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_walfile_name(pg_switch_wal())")
                    row = cur.fetchone()
                    assert row is not None
                    segments[shard] = row[0]
        finally:
            for conn in conns.values():
                conn.close()
        self._wait_archived(state, segments, wait_archived_s)
        point = RestorePoint(name, datetime.now(UTC), lsns, pause)
        self._record_point(point)
        return point

    def _wait_archived(self, state: ClusterState, segments: dict[str, str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(segments)
        while pending:
            for shard, segment in list(pending.items()):
                conn = self.cluster.admin_connect(state.primary_of(shard), dbname=DBNAME)
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT last_archived_wal FROM pg_stat_archiver")
                        row = cur.fetchone()
                finally:
                    conn.close()
                # WAL file names of one timeline sort in WAL order.
                if row is not None and row[0] is not None and row[0][:24] >= segment[:24]:
                    del pending[shard]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"WAL of shard(s) {', '.join(sorted(pending))} was not archived within "
                    f"{timeout:.0f} s; see {self.root / 'log'}"
                )
            time.sleep(0.1)

    # --------------------------------------------------------------- restore

    def restore(
        self,
        into: Path,
        *,
        point: str | None = None,
        time_target: datetime | None = None,
        replicas: int = 1,
        progress: Progress = _no_progress,
    ) -> RestoreReport:
        """Build a new embedded cluster under ``into`` from the backups, at one cut.

        Every shard is recovered to the restore point ``point`` (or the moment
        ``time_target``), promoted, given ``replicas`` streaming replicas; then
        in-doubt prepared transactions are resolved from the restored decision
        records and the cross-shard invariants are checked.

        Raises:
            InvalidInput: neither or both targets, or ``into`` already holds a cluster.
            NotFound: an unknown restore point, or no backup before the target.
        """
        if (point is None) == (time_target is None):
            raise InvalidInput("give exactly one target: a restore point name or a time")
        if time_target is not None and time_target.tzinfo is None:
            raise InvalidInput("the target time needs a time zone (e.g. 2026-12-01T12:00:00Z)")
        began = time.monotonic()
        old = self._require()
        target = LocalCluster(Path(into))
        if target.exists or (target.pg_root.exists() and any(target.pg_root.iterdir())):
            raise InvalidInput(f"{target.home} already holds a cluster; choose an empty folder")
        if target.home == self.cluster.home:
            raise InvalidInput("restore into a new folder, not the live cluster's ELEARN_HOME")
        chosen = self._choose_backups(old, point, time_target)
        label = point if point is not None else time_target.isoformat()  # type: ignore[union-attr]
        report = RestoreReport(home=target.home, target=label, backups=chosen)

        base_port = find_free_base_port(*_RESTORE_PORTS, span=PORTS_PER_SHARD * len(old.shards))
        state = ClusterState(
            base_port=base_port,
            durability=old.durability,
            shards=list(old.shards),
            region_shards=dict(old.region_shards),
            superuser_password=old.superuser_password,
            replication_password=old.replication_password,
            owner_password=old.owner_password,
            app_password=old.app_password,
            email_hash_key=old.email_hash_key,
        )
        for index, shard in enumerate(state.shards):
            state.nodes.append(
                NodeSpec(
                    name=f"{shard}-0",
                    shard=shard,
                    index=0,
                    port=base_port + index * PORTS_PER_SHARD,
                    role="primary",
                )
            )
        target.home.mkdir(parents=True, exist_ok=True)
        target._prepare_root()
        target._save(state)

        def recover_shard(shard: str) -> None:
            node = state.primary_of(shard)
            data = target.data_dir(node)
            data.mkdir(mode=0o700)
            target._user.chown(data)
            args = [f"--stanza={shard}", f"--pg1-path={data}", f"--set={chosen[shard]}"]
            if point is not None:
                args += ["--type=name", f"--target={point}"]
            else:
                assert time_target is not None
                args += ["--type=time", f"--target={time_target.isoformat(sep=' ')}"]
            progress(f"{shard}: restoring backup {chosen[shard]} to {label}")
            self._pgbackrest(*args, "--target-action=promote", "restore")
            target._write_conf(state, node)
            progress(f"{shard}: replaying WAL up to the target")
            try:
                target._start(node)
                target._wait_writable(node, timeout=300)
            except ConfigurationError as exc:
                tail = target.log_file(node).read_text(encoding="utf-8", errors="replace")
                raise ConfigurationError(
                    f"shard {shard} did not recover to {label}: {exc}; server log: {tail[-1500:]}"
                ) from exc
            self._forget_recovery_settings(target, node)

        with ThreadPoolExecutor(max_workers=len(state.shards)) as pool:
            list(pool.map(recover_shard, state.shards))
        progress("building replicas of the restored primaries")
        target.up(replicas=replicas, progress=progress)

        # Imported here: the data layer is not needed to run pgBackRest.
        from elearn_data.config import Settings  # noqa: PLC0415
        from elearn_data.database import Database  # noqa: PLC0415
        from elearn_data.monitoring.invariants import check_invariants  # noqa: PLC0415

        settings = Settings(home=target.home, recover_on_connect=False, recover_interval_s=0)
        with Database(settings, application="elearn-restore") as db:
            progress("resolving in-doubt two-phase transactions from the decision records")
            resolved = db.recover(grace_s=0)
            report.committed = len(resolved.committed)
            report.rolled_back = len(resolved.rolled_back)
            progress("checking cross-shard invariants")
            report.violations = check_invariants(db)
        report.seconds = time.monotonic() - began
        return report

    def _choose_backups(
        self, state: ClusterState, point: str | None, time_target: datetime | None
    ) -> dict[str, str]:
        """Per shard, the newest backup that ended before the target."""
        backups = self.list()
        if point is not None:
            known = self.restore_points()
            if point not in known:
                raise NotFound(
                    f"restore point {point!r} (known: {', '.join(sorted(known)) or 'none'})"
                )
            lsns = known[point].lsns
        chosen: dict[str, str] = {}
        for shard in state.shards:
            candidates = [b for b in backups if b.shard == shard]
            if point is not None:
                limit = _lsn_value(lsns[shard])
                candidates = [b for b in candidates if _lsn_value(b.lsn_stop) <= limit]
            else:
                assert time_target is not None
                candidates = [b for b in candidates if b.stopped_at <= time_target]
            if not candidates:
                raise NotFound(
                    f"no backup of shard {shard} ends before the target; take one with "
                    "`elearn backup full` before the restore point"
                )
            chosen[shard] = max(candidates, key=lambda b: _lsn_value(b.lsn_stop)).label
        return chosen

    @staticmethod
    def _forget_recovery_settings(target: LocalCluster, node: NodeSpec) -> None:
        """Drop the recovery target pgBackRest wrote: the restored node is a primary now."""
        conn = target.admin_connect(node, dbname=DBNAME)
        try:
            with conn.cursor() as cur:
                for name in (
                    "restore_command",
                    "recovery_target_name",
                    "recovery_target_time",
                    "recovery_target_action",
                ):
                    cur.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()
