"""The embedded cluster under Patroni: ``elearn cluster up --ha``.

Every shard runs as one Patroni cluster (scope ``elearn-<shard>``): one leader
and N streaming replicas, each node a PostgreSQL server managed by its own
Patroni process, all sharing one local etcd (Debian's ``etcd-server``, v3 API)
as the consensus store. A dead primary is replaced by Patroni with no operator
command, and the old primary rejoins as a replica by itself (``pg_rewind``).

What is the same as :class:`~elearn_data.cluster.local.LocalCluster`: the
nodes, names and ports, the roles and grants (``_bootstrap_roles``), the server
settings (``_conf_text``, handed to Patroni as its parameters), ``cluster.json``
(the node roles in it follow Patroni's view each time ``status`` runs) and
``settings.json``. What differs:

* ``settings.json`` lists every node of a shard as a replica candidate (one
  single-host URL per node with ``target_session_attrs=standby``): whichever
  nodes are standbys at the moment serve reads, so a promoted replica stops
  being read as one and the rejoined old primary is read again, without a new
  ``connect()``. It also lists each shard's Patroni REST endpoints
  (``patroni_api``), from which the health report takes Patroni's view.
* ``ha.json`` records the etcd ports and where Patroni is installed.

Durability ``sync`` is Patroni's ``synchronous_mode`` with
``synchronous_mode_strict``: a commit is acknowledged only once a synchronous
standby has it, so promoting that standby loses no acknowledged write.
``primary_start_timeout: 0`` makes a crashed primary fail over instead of
restarting in place. There is no watchdog device on a developer machine: see
docs/reliability.md for the split-brain risk this leaves and its remedy.

Patroni runs as the ``postgres`` OS user from a virtualenv that user can execute
(made with ``/usr/bin/python3 -m venv``; root's own Python may live where
``postgres`` cannot read it): ``$ELEARN_HOME/patroni-venv`` unless
``ELEARN_PATRONI_VENV`` names a shared one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from elearn_data.cluster.binaries import find_bindir, running_as_root
from elearn_data.cluster.local import (
    APP_USER,
    DBNAME,
    DEFAULT_BASE_PORT,
    HOST,
    PORTS_PER_SHARD,
    REPLICATION_USER,
    SUPERUSER,
    ClusterState,
    LocalCluster,
    NodeSpec,
    NodeStatus,
    Progress,
    Role,
    _no_progress,
    _port_free,
    _write_private,
)
from elearn_data.config import Durability
from elearn_data.errors import ConfigurationError, InvalidInput
from elearn_data.regions import DEFAULT_SHARDS

log = logging.getLogger(__name__)

HA_FILE_NAME = "ha.json"
PATRONI_REQUIREMENT = "patroni[etcd3,psycopg2-binary]>=4.1,<5"
PATRONI_VENV_ENV = "ELEARN_PATRONI_VENV"
ETCD_INSTALL_HINT = "apt-get update && apt-get install -y etcd-server (or run scripts/bootstrap)"
SYSTEM_PYTHON = "/usr/bin/python3"
# A node's Patroni REST API listens on its PostgreSQL port + REST_OFFSET.
REST_OFFSET = 5
MAX_REPLICAS = REST_OFFSET - 1
# Patroni 4 refuses ttl < 20. loop_wait 1 s: a dead postmaster is noticed within
# a second; retry_timeout bounds how long a DCS or PostgreSQL call may hang.
TTL_S = 20
LOOP_WAIT_S = 1
RETRY_TIMEOUT_S = 5
READY_TIMEOUT_S = 180.0
# Server settings Patroni owns (it sets them from its own configuration).
_PATRONI_OWNED = {
    "listen_addresses",
    "port",
    "cluster_name",
    "synchronous_standby_names",
    "hot_standby",
}


def scope_of(shard: str) -> str:
    """The Patroni scope (cluster name in etcd) of one shard."""
    return f"elearn-{shard}"


def rest_port(node: NodeSpec) -> int:
    return node.port + REST_OFFSET


def rest_url(node: NodeSpec) -> str:
    return f"http://{HOST}:{rest_port(node)}"


@dataclass
class HAState:
    """What ``ha.json`` holds (no secrets: those stay in ``cluster.json``)."""

    etcd_client_port: int
    etcd_peer_port: int
    venv: str
    version: int = 1

    @classmethod
    def load(cls, path: Path) -> HAState:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class MemberView:
    """One member of a shard's Patroni cluster, as Patroni reports it."""

    name: str
    role: str  # leader, sync_standby, replica, ...
    state: str  # running, streaming, starting, stopped, ...
    host: str
    port: int
    timeline: int | None
    lag: int | None  # bytes behind the leader (replicas)


@dataclass(frozen=True)
class ShardView:
    """A shard's Patroni cluster: who leads, on which timeline, who is synchronous."""

    shard: str
    members: tuple[MemberView, ...]
    error: str | None = None

    @property
    def leader(self) -> MemberView | None:
        return next(
            (m for m in self.members if m.role in ("leader", "standby_leader")),
            None,
        )

    @property
    def sync_standbys(self) -> list[str]:
        return [m.name for m in self.members if m.role in ("sync_standby", "quorum_standby")]

    def to_dict(self) -> dict[str, Any]:
        leader = self.leader
        return {
            "shard": self.shard,
            "leader": leader.name if leader else None,
            "timeline": leader.timeline if leader else None,
            "sync_standby": self.sync_standbys,
            "members": [asdict(m) for m in self.members],
            "error": self.error,
        }


def _http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 3) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    # Only ever http:// URLs this module builds from the inventory.
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        payload = response.read()
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")


def cluster_view(shard: str, urls: list[str], *, timeout: float = 2.0) -> ShardView:
    """Ask the first Patroni REST endpoint that answers for its cluster (``GET /cluster``).

    Never raises: a shard none of whose endpoints answer is returned with ``error`` set.
    """
    last_error = "no Patroni endpoint configured"
    for url in urls:
        try:
            data = _http("GET", f"{url.rstrip('/')}/cluster", timeout=timeout)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last_error = f"{url}: {exc}"
            continue
        members = []
        for m in data.get("members", []) if isinstance(data, dict) else []:
            lag = m.get("lag")
            members.append(
                MemberView(
                    name=str(m.get("name")),
                    role=str(m.get("role")),
                    state=str(m.get("state")),
                    host=str(m.get("host")),
                    port=int(m.get("port") or 0),
                    timeline=m.get("timeline"),
                    lag=lag if isinstance(lag, int) else None,
                )
            )
        return ShardView(shard, tuple(members))
    return ShardView(shard, (), error=last_error)


def find_etcd() -> Path:
    """Return the ``etcd`` server binary.

    Raises:
        ConfigurationError: etcd is not installed; the message gives the install command.
    """
    for candidate in (os.environ.get("ELEARN_ETCD"), shutil.which("etcd"), "/usr/bin/etcd"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ConfigurationError(f"etcd is not installed; install it with: {ETCD_INSTALL_HINT}")


def ensure_patroni(venv: Path, progress: Progress = _no_progress) -> Path:
    """Return the ``patroni`` executable of ``venv``, installing Patroni there if needed.

    The venv is made with the system's ``/usr/bin/python3`` so that the
    ``postgres`` OS user can execute it, and is made readable to that user.

    Raises:
        ConfigurationError: the venv cannot be made or Patroni cannot be installed.
    """
    patroni = venv / "bin" / "patroni"
    stamp = venv / ".elearn-patroni"
    if patroni.is_file() and stamp.is_file():
        return patroni
    python = SYSTEM_PYTHON if Path(SYSTEM_PYTHON).is_file() else shutil.which("python3")
    if python is None:
        raise ConfigurationError("no python3 to make the Patroni virtualenv with")
    progress(f"installing Patroni into {venv} (once)")
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", PATRONI_REQUIREMENT],
    ]
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            hint = " (apt-get install -y python3-venv)" if "venv" in argv else ""
            raise ConfigurationError(
                f"{' '.join(argv[:4])} failed{hint}: {(proc.stderr or proc.stdout)[-2000:]}"
            )
    stamp.write_text(PATRONI_REQUIREMENT + "\n", encoding="utf-8")
    for root, dirs, files in os.walk(venv):
        for name in dirs + files:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
    venv.chmod(venv.stat().st_mode | 0o055)
    return patroni


def _alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class HACluster(LocalCluster):
    """Build, start, stop, switch over and inspect the embedded cluster under Patroni."""

    def __init__(
        self, home: Path, *, fsync_initdb: bool = True, patroni_venv: Path | None = None
    ) -> None:
        super().__init__(home, fsync_initdb=fsync_initdb)
        self.ha_path = self.home / HA_FILE_NAME
        self.patroni_root = self.home / "patroni"
        self.etcd_dir = self.home / "etcd"
        env_venv = os.environ.get(PATRONI_VENV_ENV)
        self._venv_override = patroni_venv or (Path(env_venv) if env_venv else None)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        # The exit status of every server this object started and saw end, by pid.
        self._exits: dict[int, int] = {}

    @staticmethod
    def is_ha(home: Path) -> bool:
        """True when ``home`` holds a cluster built with ``up --ha``."""
        return (Path(home).expanduser().absolute() / HA_FILE_NAME).is_file()

    # ------------------------------------------------------------------ state

    def ha_state(self) -> HAState:
        if not self.ha_path.is_file():
            raise ConfigurationError(
                f"no HA cluster under {self.home}: run `elearn cluster up --ha`"
            )
        return HAState.load(self.ha_path)

    def _settings_payload(self, state: ClusterState) -> dict[str, Any]:
        payload = super()._settings_payload(state)
        for shard in state.shards:
            # Every node is a replica candidate: libpq refuses a standby connection
            # to whichever node leads at the moment, so reads follow the roles.
            payload["shards"][shard]["replicas"] = [
                f"postgresql://{APP_USER}@{HOST}:{n.port}/{DBNAME}?target_session_attrs=standby"
                for n in state.nodes_of(shard)
            ]
        payload["patroni_api"] = {
            shard: [rest_url(n) for n in state.nodes_of(shard)] for shard in state.shards
        }
        return payload

    def _venv(self, ha: HAState | None = None) -> Path:
        if self._venv_override is not None:
            return self._venv_override.expanduser().absolute()
        if ha is not None:
            return Path(ha.venv)
        return self.home / "patroni-venv"

    # ----------------------------------------------------------------- config

    def _config_path(self, node: NodeSpec) -> Path:
        return self.patroni_root / f"{node.name}.yml"

    def _pid_path(self, node: NodeSpec) -> Path:
        return self.patroni_root / f"{node.name}.pid"

    def patroni_log(self, node: NodeSpec) -> Path:
        return self.patroni_root / f"{node.name}.log"

    def _parameters(self, state: ClusterState, node: NodeSpec) -> dict[str, Any]:
        """The server settings of the non-HA cluster, as Patroni parameters."""
        params: dict[str, Any] = {}
        for raw in self._conf_text(state, node).splitlines():
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = (part.strip() for part in line.partition("="))
            if key in _PATRONI_OWNED:
                continue
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            params[key] = value
        # pg_rewind needs hint bits in the WAL (data checksums are on too).
        params["wal_log_hints"] = "on"
        return params

    def _dcs_settings(self, state: ClusterState) -> dict[str, Any]:
        sync = state.durability == "sync"
        return {
            "ttl": TTL_S,
            "loop_wait": LOOP_WAIT_S,
            "retry_timeout": RETRY_TIMEOUT_S,
            "maximum_lag_on_failover": 16 * 1024 * 1024,
            "primary_start_timeout": 0,
            "synchronous_mode": sync,
            "synchronous_mode_strict": sync,
            "failsafe_mode": False,
        }

    def _hba(self) -> list[str]:
        # The non-HA cluster's rules: one per role and database, replication for
        # the replication role only (Patroni connects as the superuser over TCP).
        return ["  ".join(part for part in rule if part) for rule in self.hba_rules()]

    def _patroni_config(self, state: ClusterState, ha: HAState, node: NodeSpec) -> dict[str, Any]:
        primary = state.nodes_of(node.shard)[0]
        params = self._parameters(state, primary)
        return {
            "scope": scope_of(node.shard),
            "namespace": "/elearn/",
            "name": node.name,
            "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
            "restapi": {
                "listen": f"{HOST}:{rest_port(node)}",
                "connect_address": f"{HOST}:{rest_port(node)}",
            },
            "etcd3": {"hosts": [f"{HOST}:{ha.etcd_client_port}"]},
            "bootstrap": {
                "dcs": {
                    **self._dcs_settings(state),
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": params,
                    },
                },
                "initdb": [
                    {"encoding": "UTF8"},
                    "no-locale",
                    "data-checksums",
                    {"auth-host": "scram-sha-256"},
                    {"auth-local": "peer"},
                ]
                + ([] if self._fsync_initdb else ["no-sync"]),
            },
            "postgresql": {
                "listen": f"{HOST}:{node.port}",
                "connect_address": f"{HOST}:{node.port}",
                "data_dir": str(self.data_dir(node)),
                "bin_dir": str(find_bindir()),
                "pgpass": str(self.patroni_root / f"{node.name}.pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER, "password": state.superuser_password},
                    "replication": {
                        "username": REPLICATION_USER,
                        "password": state.replication_password,
                    },
                    "rewind": {"username": SUPERUSER, "password": state.superuser_password},
                },
                "parameters": {"unix_socket_directories": ""},
                "pg_hba": self._hba(),
                "use_unix_socket": False,
                "remove_data_directory_on_rewind_failure": True,
                "remove_data_directory_on_diverged_timelines": True,
            },
            "watchdog": {"mode": "off"},
            "tags": {
                "nofailover": False,
                "noloadbalance": False,
                "clonefrom": False,
                "nosync": False,
            },
        }

    def _write_private_owned(self, path: Path, payload: dict[str, Any]) -> None:
        _write_private(path, payload)
        self._user.chown(path)

    # ------------------------------------------------------------- processes

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        """Start a long-running server as the server user, detached from this process."""
        with open(log_path, "ab") as log_fh:
            kwargs: dict[str, Any] = {}
            if running_as_root() and self._user.uid != 0:
                kwargs = {"user": self._user.uid, "group": self._user.gid, "extra_groups": []}
            env = {
                "PATH": "/usr/bin:/bin",
                "HOME": str(self.patroni_root),
                "LANG": "C.UTF-8",
                "PGPASSFILE": "/dev/null",
            }
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=str(self.patroni_root),
                env=env,
                start_new_session=True,
                **kwargs,
            )
        self._procs[proc.pid] = proc
        return proc

    def _reap(self) -> None:
        for pid, proc in list(self._procs.items()):
            status = proc.poll()
            if status is not None:
                self._exits[pid] = status
                self._procs.pop(pid, None)

    def _not_running(self, path: Path) -> str:
        """Why the server whose pid file is ``path`` is not running (for an error message)."""
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return f"no pid in {path}"
        status = self._exits.get(pid)
        if status is None:
            return f"pid {pid} is not running (cmdline {_cmdline(pid)!r})"
        if status < 0:
            return f"pid {pid} was killed by signal {-status} ({signal.strsignal(-status)})"
        return f"pid {pid} exited with status {status}"

    def _pid(self, path: Path, marker: str) -> int | None:
        self._reap()
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) and marker in _cmdline(pid) else None

    def patroni_pid(self, node: NodeSpec) -> int | None:
        """The pid of the node's Patroni process, or None when it does not run."""
        return self._pid(self._pid_path(node), str(self._config_path(node)))

    def postmaster_pid(self, node: NodeSpec) -> int | None:
        """The pid of the node's postmaster, or None when it does not run."""
        return self._pid(self.data_dir(node) / "postmaster.pid", "postgres")

    def _etcd_pid(self) -> int | None:
        return self._pid(self.etcd_dir / "etcd.pid", "etcd")

    def _start_etcd(self, ha: HAState, progress: Progress) -> None:
        if self._etcd_pid() is not None:
            return
        etcd = find_etcd()
        data = self.etcd_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        for path in (self.etcd_dir, data):
            self._user.chown(path)
            path.chmod(0o700)
        progress(f"etcd: starting (client port {ha.etcd_client_port})")
        client = f"http://{HOST}:{ha.etcd_client_port}"
        peer = f"http://{HOST}:{ha.etcd_peer_port}"
        proc = self._spawn(
            [
                str(etcd),
                "--name",
                "elearn",
                "--data-dir",
                str(data),
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"elearn={peer}",
                "--initial-cluster-state",
                "new",
                "--log-level",
                "warn",
            ],
            self.etcd_dir / "etcd.log",
        )
        (self.etcd_dir / "etcd.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 60
        while True:
            try:
                health = _http("GET", f"{client}/health", timeout=2)
                if isinstance(health, dict) and str(health.get("health")) == "true":
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.etcd_dir / "etcd.log").read_text(errors="replace")[-2000:]
                raise ConfigurationError(f"etcd did not start: {tail}")
            time.sleep(0.1)

    def _start_patroni(self, state: ClusterState, ha: HAState, node: NodeSpec) -> None:
        if self.patroni_pid(node) is not None:
            return
        self._write_private_owned(self._config_path(node), self._patroni_config(state, ha, node))
        proc = self._spawn(
            [str(self._venv(ha) / "bin" / "patroni"), str(self._config_path(node))],
            self.patroni_log(node),
        )
        self._pid_path(node).write_text(f"{proc.pid}\n")

    def _signal(self, pid: int | None, sig: signal.Signals) -> None:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _wait_gone(self, pids: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in pids):
            self._reap()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _stop_node(self, node: NodeSpec, *, kill: bool = False, timeout: float = 90) -> None:
        """Stop a node: Patroni shuts PostgreSQL down (``kill``: SIGKILL both at once)."""
        patroni, postmaster = self.patroni_pid(node), self.postmaster_pid(node)
        if kill:
            self._signal(patroni, signal.SIGKILL)
            self._signal(postmaster, signal.SIGKILL)
            self._wait_gone([p for p in (patroni, postmaster) if p], 30)
            return
        self._signal(patroni, signal.SIGTERM)
        if not self._wait_gone([p for p in (patroni,) if p], timeout):
            log.warning("%s: Patroni did not stop in %.0f s; killing it", node.name, timeout)
            self._signal(patroni, signal.SIGKILL)
        postmaster = self.postmaster_pid(node)
        if postmaster is not None:  # Patroni was killed or left it running
            self._stop(node, "fast")

    def kill_postmaster(self, node: NodeSpec) -> int:
        """SIGKILL the node's postmaster only (its Patroni keeps running): a crashed server.

        Raises:
            ConfigurationError: the node's PostgreSQL does not run.
        """
        pid = self.postmaster_pid(node)
        if pid is None:
            raise ConfigurationError(f"{node.name}: PostgreSQL is not running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_node(self, node: NodeSpec) -> None:
        """SIGKILL the node's Patroni and its postmaster at once: a lost machine."""
        self._stop_node(node, kill=True)

    # ------------------------------------------------------------ Patroni view

    def views(self, state: ClusterState | None = None) -> dict[str, ShardView]:
        """Patroni's view of every shard (never raises for an unreachable one)."""
        state = state or self.state()
        with ThreadPoolExecutor(max_workers=len(state.shards)) as pool:
            found = pool.map(
                lambda s: cluster_view(s, [rest_url(n) for n in state.nodes_of(s)]),
                state.shards,
            )
            return {v.shard: v for v in found}

    def _apply_roles(self, state: ClusterState, views: dict[str, ShardView]) -> bool:
        changed = False
        for shard in state.shards:
            leader = views[shard].leader if shard in views else None
            if leader is None:
                continue  # mid-failover: keep the last known roles
            for node in state.nodes_of(shard):
                role: Role = "primary" if node.name == leader.name else "replica"
                if node.role != role:
                    node.role = role
                    changed = True
        return changed

    def refresh_roles(self) -> ClusterState:
        """Write Patroni's current roles into ``cluster.json``; return the inventory."""
        state = self.state()
        views = self.views(state)
        if self._apply_roles(state, views):
            with self._locked():
                state = self.state()
                if self._apply_roles(state, views):
                    self._save(state)
        return state

    def wait_ready(self, shard: str, *, timeout: float = READY_TIMEOUT_S) -> ShardView:
        """Wait until the shard has a running leader and every node streams from it.

        In sync durability a synchronous standby must be chosen too.

        Raises:
            ConfigurationError: not ready within ``timeout`` (the message gives Patroni's view).
        """
        state = self.state()
        urls = [rest_url(n) for n in state.nodes_of(shard)]
        expected = {n.name for n in state.nodes_of(shard)}
        deadline = time.monotonic() + timeout
        while True:
            view = cluster_view(shard, urls)
            leader = view.leader
            ready = (
                leader is not None
                and leader.state == "running"
                and {m.name for m in view.members} >= expected
                and all(m.state == "streaming" for m in view.members if m is not leader)
                and (state.durability != "sync" or len(expected) < 2 or bool(view.sync_standbys))
            )
            if ready and leader is not None and self._writable(state, leader):
                return view
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"shard {shard!r} is not ready after {timeout:.0f} s: {view.to_dict()}"
                )
            time.sleep(0.2)

    def _writable(self, state: ClusterState, member: MemberView) -> bool:
        node = next((n for n in state.nodes if n.name == member.name), None)
        return node is not None and self.probe(node).writable

    # ----------------------------------------------------------------- public

    def up(
        self,
        *,
        replicas: int = 1,
        base_port: int | None = None,
        durability: Durability | None = None,
        progress: Progress = _no_progress,
    ) -> list[NodeStatus]:
        """Build what is missing, start what is stopped, and return the status (idempotent).

        Raises:
            InvalidInput: ``replicas`` out of range (sync durability needs at least one).
            ConfigurationError: etcd or Patroni cannot be installed or started, a
                non-HA cluster already lives under this ELEARN_HOME, or a shard
                does not become ready.
        """
        if replicas < 0 or replicas > MAX_REPLICAS:
            raise InvalidInput(f"replicas must be between 0 and {MAX_REPLICAS}: {replicas}")
        find_etcd()
        with self._locked():
            if self.exists and not self.ha_path.is_file():
                raise ConfigurationError(
                    f"the cluster under {self.home} was built without --ha; "
                    "remove it with `elearn cluster down --purge` first"
                )
            for folder in (self.pg_root, self.patroni_root):
                folder.mkdir(parents=True, exist_ok=True)
                self._user.chown(folder)
                os.chmod(folder, 0o700)
            self._user.make_reachable(self.pg_root)
            if self.exists:
                state = ClusterState.load(self.state_path)
                ha = HAState.load(self.ha_path)
                if durability is not None:
                    state.durability = durability
            else:
                port0 = DEFAULT_BASE_PORT if base_port is None else base_port
                state = ClusterState.fresh(port0, durability or "async", list(DEFAULT_SHARDS))
                etcd_port = port0 + len(state.shards) * PORTS_PER_SHARD
                for port in (etcd_port, etcd_port + 1):
                    if not _port_free(port):
                        raise ConfigurationError(
                            f"port {port} on {HOST} is in use; choose another range "
                            "with --base-port"
                        )
                ha = HAState(etcd_port, etcd_port + 1, str(self._venv()))
            if (
                state.durability == "sync"
                and replicas < 1
                and len(state.nodes) < 2 * len(state.shards)
            ):
                raise InvalidInput("sync durability needs at least one replica per shard")
            self._plan_nodes(state, replicas)
            for node in state.nodes:
                if not _port_free(rest_port(node)) and self.patroni_pid(node) is None:
                    raise ConfigurationError(
                        f"port {rest_port(node)} on {HOST} (Patroni REST of {node.name}) is in use"
                    )
            self._write_private_owned(self.ha_path, asdict(ha))
            self._save(state)
            ensure_patroni(self._venv(ha), progress)
            self._user.make_reachable(self._venv(ha))
            self._start_etcd(ha, progress)
            with ThreadPoolExecutor(max_workers=len(state.shards)) as pool:
                list(pool.map(lambda s: self._up_shard_ha(state, ha, s, progress), state.shards))
            self._apply_roles(state, self.views(state))
            self._save(state)
        return self.status()

    def _up_shard_ha(
        self, state: ClusterState, ha: HAState, shard: str, progress: Progress
    ) -> None:
        nodes = state.nodes_of(shard)
        fresh = not any(self._initialized(n) for n in nodes)
        for node in nodes:
            if self.patroni_pid(node) is None:
                what = "bootstrap" if fresh and node is nodes[0] else "start"
                progress(f"{node.name}: Patroni {what} (port {node.port}, REST {rest_port(node)})")
                self._start_patroni(state, ha, node)
            if fresh and node is nodes[0]:
                # Let the first node win the leader race and run initdb, so that
                # node 0 is the primary of a new cluster as without --ha.
                self._wait_leader(shard, node)
        view = self.wait_ready(shard)
        leader = view.leader
        assert leader is not None
        # Settings a newer version writes reach a running cluster too (a reload).
        self._patch_config(
            state,
            shard,
            {
                **self._dcs_settings(state),
                "postgresql": {
                    "use_pg_rewind": True,
                    "parameters": self._parameters(state, nodes[0]),
                },
            },
        )
        leader_node = next(n for n in nodes if n.name == leader.name)
        self._bootstrap_roles(state, leader_node)
        progress(f"shard {shard}: leader {leader.name}, timeline {leader.timeline}")

    def _wait_leader(self, shard: str, node: NodeSpec, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            view = cluster_view(shard, [rest_url(node)])
            leader = view.leader
            if leader is not None and leader.state == "running":
                return
            running = self.patroni_pid(node) is not None
            if not running or time.monotonic() > deadline:
                why = "timed out" if running else self._not_running(self._pid_path(node))
                tail = self.patroni_log(node).read_text(errors="replace")[-3000:]
                raise ConfigurationError(f"{node.name}: Patroni did not bootstrap ({why}): {tail}")
            time.sleep(0.2)

    def _patch_config(self, state: ClusterState, shard: str, patch: dict[str, Any]) -> None:
        errors = []
        for node in state.nodes_of(shard):
            try:
                _http("PATCH", f"{rest_url(node)}/config", patch, timeout=5)
                return
            except (OSError, urllib.error.URLError, ValueError) as exc:
                errors.append(f"{node.name}: {exc}")
        raise ConfigurationError(f"cannot change shard {shard!r}'s Patroni settings: {errors}")

    def status(self) -> list[NodeStatus]:
        """Every node with its role as Patroni sees it; never raises for a down node."""
        self.refresh_roles()
        return super().status()

    def down(self, *, purge: bool = False) -> None:
        """Stop every node (through Patroni) and etcd; ``purge`` kills them and deletes everything.

        The Patroni virtualenv under ELEARN_HOME is kept (it holds no data).
        """
        if not self.exists:
            if purge:
                for folder in (self.pg_root, self.patroni_root, self.etcd_dir):
                    shutil.rmtree(folder, ignore_errors=True)
                self.ha_path.unlink(missing_ok=True)
            return
        with self._locked():
            state = ClusterState.load(self.state_path)
            # Replicas first, then the leaders: no failover is started by the shutdown.
            # Data about to be deleted needs no clean shutdown: purge kills at once.
            replicas = [n for n in state.nodes if n.role == "replica"]
            primaries = [n for n in state.nodes if n.role == "primary"]
            for group in [replicas + primaries] if purge else [replicas, primaries]:
                if group:
                    with ThreadPoolExecutor(max_workers=len(group)) as pool:
                        list(pool.map(partial(self._stop_node, kill=purge), group))
            etcd = self._etcd_pid()
            self._signal(etcd, signal.SIGTERM)
            if etcd is not None and not self._wait_gone([etcd], 30):
                self._signal(etcd, signal.SIGKILL)
            if purge:
                for folder in (self.pg_root, self.patroni_root, self.etcd_dir):
                    shutil.rmtree(folder, ignore_errors=True)
                for path in (self.state_path, self.settings_path, self.ha_path):
                    path.unlink(missing_ok=True)

    def _select(self, state: ClusterState, shard: str, role: Role) -> list[NodeSpec]:
        if shard not in state.shards:
            raise InvalidInput(f"unknown shard {shard!r}; shards: {', '.join(state.shards)}")
        self._apply_roles(state, self.views(state))
        return [n for n in state.nodes_of(shard) if n.role == role]

    def stop(self, shard: str, role: Role, *, mode: str = "fast") -> list[NodeSpec]:
        """Stop the shard's node(s) in ``role`` (Patroni and PostgreSQL).

        ``mode='immediate'`` kills both processes (SIGKILL): a lost node. A
        stopped leader is replaced by Patroni; ``start`` brings the node back as
        a replica.
        """
        state = self.state()
        nodes = self._select(state, shard, role)
        for node in nodes:
            self._stop_node(node, kill=mode == "immediate")
        return nodes

    def start(self, shard: str, role: Role) -> list[NodeSpec]:
        """Start the shard's stopped node(s) in ``role`` (as the inventory last saw it)."""
        state = self.state()
        ha = self.ha_state()
        nodes = self._select(state, shard, role)
        self._start_etcd(ha, _no_progress)
        for node in nodes:
            self._start_patroni(state, ha, node)
        return nodes

    def failover(self, shard: str, *, progress: Progress = _no_progress) -> NodeSpec:
        """Ask Patroni for a switchover of ``shard``; return the new primary.

        Patroni demotes the leader cleanly, promotes a (synchronous) replica and
        the old leader rejoins as a replica; the call returns once the shard is
        ready again.

        Raises:
            InvalidInput: unknown shard.
            ConfigurationError: the shard has no leader or no replica to switch to,
                or Patroni refused or did not finish the switchover.
        """
        with self._locked():
            state = ClusterState.load(self.state_path)
            if shard not in state.shards:
                raise InvalidInput(f"unknown shard {shard!r}; shards: {', '.join(state.shards)}")
            view = cluster_view(shard, [rest_url(n) for n in state.nodes_of(shard)])
            leader = view.leader
            if leader is None:
                raise ConfigurationError(f"shard {shard!r} has no leader: {view.to_dict()}")
            if len(view.members) < 2:
                raise ConfigurationError(f"shard {shard!r} has no replica to switch over to")
            old = next(n for n in state.nodes if n.name == leader.name)
            progress(f"{old.name}: switchover requested from Patroni")
            try:
                _http("POST", f"{rest_url(old)}/switchover", {"leader": leader.name}, timeout=60)
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")
                raise ConfigurationError(f"Patroni refused the switchover: {detail}") from exc
            except (OSError, urllib.error.URLError) as exc:
                raise ConfigurationError(f"switchover of shard {shard!r} failed: {exc}") from exc
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                view = self.wait_ready(shard, timeout=max(1.0, deadline - time.monotonic()))
                if view.leader is not None and view.leader.name != old.name:
                    break
                time.sleep(0.2)
            self._apply_roles(state, {shard: view})
            self._save(state)
            new = state.primary_of(shard)
            progress(f"{new.name}: primary of shard {shard}; {old.name} streams from it")
            return replace(new)

    def set_durability(self, mode: Durability) -> None:
        """Switch every shard between Patroni's synchronous mode and asynchronous replication."""
        with self._locked():
            state = ClusterState.load(self.state_path)
            state.durability = mode
            for shard in state.shards:
                self._patch_config(state, shard, self._dcs_settings(state))
            self._save(state)
