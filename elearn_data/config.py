"""Settings: one pydantic-settings model for every knob of the platform.

Sources, highest priority first: keyword arguments, ``ELEARN_*`` environment
variables (nested with ``__``, e.g. ``ELEARN_SHARDS__EU__PRIMARY``), a ``.env``
file, and finally -- only when no shard is configured by any of those -- the
settings file that ``elearn cluster up`` writes under ``ELEARN_HOME``. Unset,
``ELEARN_HOME`` is the nearest ``.elearn`` folder in the current directory or
any folder above it (as git finds ``.git``: a notebook kernel started in
``examples/`` finds the project's cluster), else ``./.elearn``. That last rule
is what lets ``elearn_data.connect()`` work with no configuration at all on a
machine that ran ``elearn up``.

Shard URLs are libpq URIs. A primary URL may list several hosts with
``target_session_attrs=read-write`` so that a promotion done by Patroni,
pg_auto_failover or ``elearn cluster failover`` is followed by libpq itself. A
password written inside a URL is moved into a ``SecretStr`` at validation time,
so no repr, log line or error message ever shows it.
"""

from __future__ import annotations

import itertools
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from elearn_data.errors import ConfigurationError
from elearn_data.regions import DEFAULT_REGION_SHARDS, Region

SETTINGS_FILE_NAME = "settings.json"
# The embedded cluster's inventory (LocalCluster.state_path): the operator's secrets.
CLUSTER_FILE_NAME = "cluster.json"
HOME_DIR_NAME = ".elearn"
# Kept for callers that used it: the folder name, relative to the current directory.
DEFAULT_HOME = Path(HOME_DIR_NAME)

Durability = Literal["async", "sync"]


# --------------------------------------------------------------------------- home


def discover_home(start: Path | None = None) -> Path:
    """Return the nearest ``.elearn`` folder in ``start`` or above, else ``start/.elearn``.

    ``start`` defaults to the current directory. This is ``ELEARN_HOME``'s value
    when the variable is unset.
    """
    here = (start or Path.cwd()).expanduser().absolute()
    for folder in (here, *here.parents):
        candidate = folder / HOME_DIR_NAME
        if candidate.is_dir():
            return candidate
    return here / HOME_DIR_NAME


# --------------------------------------------------------------------------- URLs


# Query-string parameters whose value is a secret (libpq's "password", and
# spellings other drivers accept).
_SECRET_QUERY_KEYS = frozenset({"password", "pass", "passwd", "pwd", "sslpassword"})


def split_password(url: str) -> tuple[str, str | None]:
    """Return ``url`` without its password, and the password (or None).

    The password may sit in the authority (``user:pw@host``) or in the query
    string (``?password=pw``, as libpq accepts); both are removed.
    """
    parts = urlsplit(url)
    password: str | None = None
    if parts.query:
        kept: list[str] = []
        for item in parts.query.split("&"):
            key, _, value = item.partition("=")
            if unquote(key).lower() in _SECRET_QUERY_KEYS:
                password = unquote(value)
            else:
                kept.append(item)
        parts = parts._replace(query="&".join(kept))
    if "@" in parts.netloc:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user, sep, authority_password = userinfo.partition(":")
        if sep:
            password = unquote(authority_password)
            parts = parts._replace(netloc=f"{user}@{hostinfo}")
    if password is None:
        return url, None
    return urlunsplit(parts), password


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for logs and reports).

    Both places a libpq URI may carry one are covered: ``user:pw@host`` and
    ``?password=pw``.
    """
    parts = urlsplit(url)
    if parts.query:
        items = []
        for item in parts.query.split("&"):
            key, sep, _value = item.partition("=")
            secret = unquote(key).lower() in _SECRET_QUERY_KEYS
            items.append(f"{key}{sep}***" if secret and sep else item)
        parts = parts._replace(query="&".join(items))
    if "@" in parts.netloc:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        if sep:
            parts = parts._replace(netloc=f"{user}:***@{hostinfo}")
    return urlunsplit(parts)


def url_hosts(url: str) -> list[tuple[str, int]]:
    """Return the (host, port) pairs of a possibly multi-host libpq URI."""
    parts: SplitResult = urlsplit(url)
    hostinfo = parts.netloc.rpartition("@")[2]
    hosts: list[tuple[str, int]] = []
    for item in hostinfo.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or "]" in port:
            host, port = item, "5432"
        hosts.append((unquote(host) or "localhost", int(port or 5432)))
    return hosts


def url_user(url: str) -> str | None:
    """Return the user name written in a libpq URI, if any."""
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return None
    return unquote(netloc.rpartition("@")[0].partition(":")[0]) or None


def url_dbname(url: str) -> str:
    """Return the database name of a libpq URI (the user's name when absent)."""
    path = urlsplit(url).path.lstrip("/")
    return unquote(path) or (url_user(url) or "postgres")


def with_user(url: str, user: str) -> str:
    """Return ``url`` connecting as ``user`` (without any password)."""
    bare, _ = split_password(url)
    parts = urlsplit(bare)
    hostinfo = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{hostinfo}"))


# ---------------------------------------------------------------------- sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolSettings(_Section):
    """One SQLAlchemy pool per node; these numbers apply to each of them."""

    size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    timeout_s: float = Field(default=5.0, gt=0)
    recycle_s: int = Field(default=1800, ge=-1)
    # Off by default: a ping costs one round trip per checkout (it would double a
    # point read). Stale connections are detected on use instead, and the unit of
    # work retries once when nothing has been committed yet.
    pre_ping: bool = False


class ReplicaPolicy(_Section):
    """When a reader may use a replica."""

    max_lag_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # A replica with WAL received but not replayed whose replay is paused, or
    # has not advanced for this long, is skipped by every reader (it serves
    # stale rows even to readers without a causal token); health() reports it
    # as degraded.
    max_lag_s: float = Field(default=2.0, gt=0)
    # How long a reader holding a causal token waits for a replica to replay it
    # before it reads from the primary instead.
    causal_wait_s: float = Field(default=0.05, ge=0)
    # How often a replica's lag is measured (the result is cached between checks).
    check_interval_s: float = Field(default=1.0, gt=0)
    # How long a replica that failed to connect is skipped before it is tried again.
    retry_down_after_s: float = Field(default=5.0, ge=0)


class LoginSettings(_Section):
    """Login throttling: per account, stored on the account's home shard."""

    # Consecutive failures of one account after which authenticate() waits.
    max_failures: int = Field(default=5, ge=1)
    # The first wait; it doubles with each further failure, up to max_backoff_s.
    backoff_s: float = Field(default=30.0, gt=0)
    max_backoff_s: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LoginSettings:
        if self.max_backoff_s < self.backoff_s:
            raise ValueError(
                f"login.max_backoff_s ({self.max_backoff_s}) is below login.backoff_s "
                f"({self.backoff_s})"
            )
        return self


class GamificationSettings(_Section):
    """Levels of the points a learner has earned (see db.gamification)."""

    # The points at which each level starts: level 1 at the first (0), level k at
    # the k-th. Strictly increasing, starting at 0.
    level_thresholds: tuple[int, ...] = (0, 100, 250, 500, 1000, 2000, 4000, 8000, 16000)

    @model_validator(mode="after")
    def _increasing(self) -> GamificationSettings:
        values = self.level_thresholds
        if not values or values[0] != 0:
            raise ValueError("gamification.level_thresholds must start at 0")
        if any(b <= a for a, b in itertools.pairwise(values)):
            raise ValueError(f"gamification.level_thresholds must be strictly increasing: {values}")
        return self


# OWASP's argon2id minimum (Password Storage Cheat Sheet): equivalent pairs of
# memory (KiB) and passes; a configuration below every pair is refused.
ARGON2_MINIMUM: tuple[tuple[int, int], ...] = (
    (47104, 1),
    (19456, 2),
    (12288, 3),
    (9216, 4),
    (7168, 5),
)


def argon2_below_minimum(memory_kib: int, time_cost: int) -> bool:
    """Return True when (memory, passes) is weaker than every OWASP minimum pair."""
    return not any(memory_kib >= m and time_cost >= t for m, t in ARGON2_MINIMUM)


class ShardSettings(_Section):
    """Connection URLs of one shard: a primary and any number of replicas."""

    primary: str | None = None
    replicas: tuple[str, ...] = ()
    # Configured nodes that serve nothing for now (e.g. an old primary fenced by a
    # failover, waiting to be rebuilt as a replica). Never read from; the health
    # report lists them, and counts them among the shard's configured replicas.
    out_of_service: tuple[str, ...] = ()
    password: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _move_password_out_of_urls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        found: str | None = None
        if isinstance(data.get("primary"), str):
            data["primary"], found = split_password(data["primary"])
        for key in ("replicas", "out_of_service"):
            urls = data.get(key)
            if isinstance(urls, list | tuple):
                stripped = []
                for item in urls:
                    if isinstance(item, str):
                        bare, pw = split_password(item)
                        found = found or pw
                        stripped.append(bare)
                    else:
                        stripped.append(item)
                data[key] = tuple(stripped)
        if found is not None and not data.get("password"):
            data["password"] = found
        return data

    def nodes(self) -> list[str]:
        """Return every URL of the shard, primary first."""
        return ([self.primary] if self.primary else []) + list(self.replicas)


class RateLimit(_Section):
    """At most ``requests`` per ``per_s`` seconds, with bursts up to ``requests`` (GCRA)."""

    requests: int = Field(default=600, ge=1)
    per_s: float = Field(default=60.0, gt=0)


class WebSettings(_Section):
    """``elearn serve``: signing keys of access and causal tokens, token lifetime, rate limits.

    Without ``signing_key``, ``elearn serve`` keeps a generated key in
    ``<home>/web/signing-keys.json`` (mode 0600). Rotation: make a new key
    current with a new ``signing_key_id`` and keep the old one in
    ``previous_keys`` until the tokens it signed have expired.
    """

    signing_key: SecretStr | None = None
    signing_key_id: str = Field(default="k1", min_length=1, max_length=64)
    previous_keys: dict[str, SecretStr] = Field(default_factory=dict)
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    issuer: str = "elearn"
    # Rate limits hold across every worker (a shared file under <home>/web by default).
    rate_limit_store: Path | None = None
    per_address: RateLimit = RateLimit(requests=1200, per_s=60.0)
    per_account: RateLimit = RateLimit(requests=600, per_s=60.0)
    rate_limits_enabled: bool = True
    # GET /metrics: the worker's Prometheus metrics (db.metrics()), no token needed;
    # off by default, as the metrics name shards and methods.
    metrics_enabled: bool = False
    # Idle keep-alive connections are closed after this long (longer than a load
    # balancer's idle timeout, so that the balancer closes first).
    keep_alive_s: int = Field(default=75, ge=1)


# ----------------------------------------------------------------------- settings


class Settings(BaseSettings):
    """Every setting of elearn_data. Build it directly in tests: ``Settings(shards=...)``."""

    model_config = SettingsConfigDict(
        env_prefix="ELEARN_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    home: Path = Field(default_factory=discover_home)
    shards: dict[str, ShardSettings] = Field(default_factory=dict)
    region_shards: dict[Region, str] = Field(default_factory=lambda: dict(DEFAULT_REGION_SHARDS))
    # The shard nearest to this process: catalog reads are served there.
    local_shard: str | None = None
    # REST API URLs of each shard's Patroni members (``elearn cluster up --ha``
    # writes them): the health report shows Patroni's view of those shards.
    patroni_api: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    db_password: SecretStr | None = None
    # Migrations run as the schema owner; the application role can only run DML
    # and call the functions (see docs/reliability.md, least privilege). The
    # owner's password is never in settings.json: it comes from
    # ELEARN_OWNER_PASSWORD, ELEARN_OWNER_URL (a libpq URI whose user and
    # password are the owner's) or the operator's cluster.json (owner_secret()).
    owner_user: str = "elearn_owner"
    owner_password: SecretStr | None = None
    owner_url: SecretStr | None = None
    app_user: str = "elearn_app"

    pool: PoolSettings = PoolSettings()
    replica: ReplicaPolicy = ReplicaPolicy()
    durability: Durability = "async"
    connect_timeout_s: int = Field(default=3, ge=1)
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    # PostgreSQL cannot see a deadlock that spans two shards; a lock wait longer
    # than this aborts the transaction instead of hanging forever.
    lock_timeout_ms: int = Field(default=10_000, ge=0)

    email_hash_key: SecretStr | None = None
    # argon2id parameters: 46 MiB, 1 pass, 1 lane (OWASP's first recommended
    # configuration). A configuration below every pair of ARGON2_MINIMUM is
    # refused unless argon2_allow_weak is set -- for test suites only, where
    # the hash's cost is not what is tested. Hashes made with other parameters
    # are upgraded at the next successful login.
    argon2_time_cost: int = Field(default=1, ge=1)
    argon2_memory_kib: int = Field(default=47104, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)
    argon2_allow_weak: bool = False
    login: LoginSettings = LoginSettings()
    gamification: GamificationSettings = GamificationSettings()
    tax_rate: Decimal = Field(default=Decimal("0.10"), ge=0, le=1)
    twophase_grace_s: float = Field(default=30.0, ge=0)
    # How long a committing call keeps trying (on fresh connections, following a
    # promotion) to read back an ambiguous decision or to finish COMMIT PREPARED
    # on a participant before it raises OutcomeUnknown / CommitPending.
    twophase_resolve_s: float = Field(default=30.0, ge=0)
    # The start-up recovery pass runs in the background thread below: connect()
    # never waits for it (db.wait_idle() does; db.recover() is synchronous).
    recover_on_connect: bool = True
    # A background thread of each connect() object settles in-doubt two-phase
    # transactions this often (they hold row locks until settled); 0 disables it.
    recover_interval_s: float = Field(default=60.0, ge=0)
    # The outbox relay thread of each connect() object (elearn_data.background):
    # it applies the outbox rows of this object's commits right after them, and
    # sweeps every shard (retrying failed rows) at start-up and this often; 0:
    # no periodic sweep. Off: only db.process_outbox() applies rows.
    outbox_relay: bool = True
    outbox_interval_s: float = Field(default=30.0, ge=0)
    # How long a call that needs its outbox rows applied (erase) and
    # db.process_outbox() wait for the relay's passes under way.
    outbox_wait_s: float = Field(default=10.0, ge=0)

    mongo_uri: SecretStr | None = None
    mongo_db: str = "elearn"

    analytics_timeout_s: float = Field(default=60.0, gt=0)
    # The read-only role of db.analytics.sql (ELEARN_ANALYST_USER / ELEARN_ANALYST_PASSWORD):
    # SELECT on the analyst-visible columns only, granted by the migrations.
    analyst_user: str = "elearn_analyst"
    analyst_password: SecretStr | None = None
    web: WebSettings = WebSettings()

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @model_validator(mode="before")
    @classmethod
    def _embedded_cluster_fallback(cls, data: Any) -> Any:
        """Fill unset fields from ``<home>/settings.json`` when no shard is configured."""
        if not isinstance(data, dict) or data.get("shards"):
            return data
        home = Path(data.get("home") or discover_home()).expanduser()
        path = home / SETTINGS_FILE_NAME
        if not path.is_file():
            return data
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read the cluster settings file {path}: {exc}"
            ) from exc
        merged = dict(stored)
        merged.update({k: v for k, v in data.items() if v is not None})
        merged["shards"] = stored.get("shards", {})
        return merged

    @model_validator(mode="after")
    def _strong_enough_hashing(self) -> Settings:
        if not self.argon2_allow_weak and argon2_below_minimum(
            self.argon2_memory_kib, self.argon2_time_cost
        ):
            raise ConfigurationError(
                f"argon2 parameters below OWASP's minimum: {self.argon2_memory_kib} KiB and "
                f"{self.argon2_time_cost} pass(es); use e.g. 47104 KiB with 1 pass or "
                "19456 KiB with 2"
            )
        return self

    @model_validator(mode="after")
    def _complete_topology(self) -> Settings:
        if not self.shards:
            origin = _home_origin("home" in self.model_fields_set)
            raise ConfigurationError(
                f"no shards configured: no cluster settings under {self.home} ({origin}); "
                "run `elearn up` to build the embedded cluster there, point ELEARN_HOME at "
                "the folder that holds one, or set ELEARN_SHARDS"
            )
        for name, shard in self.shards.items():
            if not shard.primary:
                raise ConfigurationError(
                    f"shard {name!r} has no primary URL (shards.{name}.primary)"
                )
        for region in Region:
            shard_name = self.region_shards.get(region)
            if shard_name is None:
                raise ConfigurationError(f"region {region.value!r} is not mapped to a shard")
            if shard_name not in self.shards:
                raise ConfigurationError(
                    f"region {region.value!r} maps to shard {shard_name!r}, "
                    f"which has no settings (known shards: {', '.join(self.shards)})"
                )
        unused = set(self.shards) - set(self.region_shards.values())
        if unused:
            raise ConfigurationError(f"shard(s) {', '.join(sorted(unused))} serve no region")
        if self.local_shard is not None and self.local_shard not in self.shards:
            raise ConfigurationError(f"local_shard {self.local_shard!r} is not a configured shard")
        return self

    # ------------------------------------------------------------------ helpers

    @property
    def shard_names(self) -> tuple[str, ...]:
        """Shard names in a fixed order (the lock order of multi-shard writes)."""
        return tuple(sorted(self.shards))

    @property
    def home_shard(self) -> str:
        """The shard that serves catalog reads for this process."""
        return self.local_shard or self.shard_names[0]

    def owner_credentials(self) -> tuple[str, str | None]:
        """Return the schema owner's (user, password) for migrations and seeding.

        Sources, first found wins: ``owner_password`` (ELEARN_OWNER_PASSWORD),
        the user and password of ``owner_url`` (ELEARN_OWNER_URL), and the
        operator's ``<home>/cluster.json`` (0600) of the embedded cluster. The
        runtime settings file never holds it.

        Raises:
            ConfigurationError: cluster.json exists but cannot be read.
        """
        user = self.owner_user
        if self.owner_url is not None:
            url = self.owner_url.get_secret_value()
            bare, url_password = split_password(url)
            user = url_user(bare) or user
            if self.owner_password is None and url_password is not None:
                return user, url_password
        if self.owner_password is not None:
            return user, self.owner_password.get_secret_value()
        path = self.home / CLUSTER_FILE_NAME
        if not path.is_file():
            return user, None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read the owner's password from {path}: {exc}"
            ) from exc
        password = stored.get("owner_password")
        return user, password if isinstance(password, str) else None

    def shard_password(self, shard: str) -> str | None:
        """Return the application password for ``shard`` (shard-specific first)."""
        secret = self.shards[shard].password or self.db_password
        return secret.get_secret_value() if secret else None


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment, translating validation errors.

    Raises:
        ConfigurationError: the settings are incomplete or invalid; the message
            names the field at fault.
    """
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        # pydantic-settings could not parse a variable (e.g. ELEARN_SHARDS is not JSON).
        cause = exc.__cause__
        detail = f": {str(cause).splitlines()[0]}" if cause is not None and str(cause) else ""
        raise ConfigurationError(f"invalid settings: {exc}{detail}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc


class HomeSettings(BaseSettings):
    """Only ``ELEARN_HOME``: what cluster commands need before any shard exists."""

    model_config = SettingsConfigDict(env_prefix="ELEARN_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=discover_home)


def elearn_home() -> Path:
    """Return the absolute ELEARN_HOME (environment, ``.env``, else :func:`discover_home`)."""
    return HomeSettings().home.expanduser().absolute()


def _home_origin(explicit: bool) -> str:
    """Say where the home came from, for error messages."""
    if explicit:
        return "home given by ELEARN_HOME" if os.environ.get("ELEARN_HOME") else "home given"
    return (
        f"ELEARN_HOME is unset and no {HOME_DIR_NAME} folder was found in {Path.cwd()} "
        "or any folder above it"
    )


def settings_file(home: Path) -> Path:
    """Return where the embedded cluster writes the settings it created."""
    return home / SETTINGS_FILE_NAME
