"""Settings: one pydantic-settings model for every knob of the platform.

Sources, highest priority first: keyword arguments, ``ELEARN_*`` environment
variables (nested with ``__``, e.g. ``ELEARN_SHARDS__EU__PRIMARY``), a ``.env``
file, and finally -- only when no shard is configured by any of those -- the
settings file that ``elearn cluster up`` writes under ``ELEARN_HOME``
(default ``./.elearn``). That last rule is what lets ``elearn_data.connect()``
work with no configuration at all on a machine that ran ``elearn up``.

Shard URLs are libpq URIs. A primary URL may list several hosts with
``target_session_attrs=read-write`` so that a promotion done by Patroni,
pg_auto_failover or ``elearn cluster failover`` is followed by libpq itself. A
password written inside a URL is moved into a ``SecretStr`` at validation time,
so no repr, log line or error message ever shows it.
"""

from __future__ import annotations

import json
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
from pydantic_settings import BaseSettings, SettingsConfigDict

from elearn_data.errors import ConfigurationError
from elearn_data.regions import DEFAULT_REGION_SHARDS, Region

SETTINGS_FILE_NAME = "settings.json"
DEFAULT_HOME = Path(".elearn")

Durability = Literal["async", "sync"]


# --------------------------------------------------------------------------- URLs


def split_password(url: str) -> tuple[str, str | None]:
    """Return ``url`` without its password, and the password (or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    if not sep:
        return url, None
    return urlunsplit(parts._replace(netloc=f"{user}@{hostinfo}")), unquote(password)


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for logs and reports)."""
    bare, password = split_password(url)
    if password is None:
        return bare
    parts = urlsplit(bare)
    user, _, hostinfo = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


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


class ShardSettings(_Section):
    """Connection URLs of one shard: a primary and any number of replicas."""

    primary: str | None = None
    replicas: tuple[str, ...] = ()
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
        replicas = data.get("replicas")
        if isinstance(replicas, list | tuple):
            stripped = []
            for item in replicas:
                if isinstance(item, str):
                    bare, pw = split_password(item)
                    found = found or pw
                    stripped.append(bare)
                else:
                    stripped.append(item)
            data["replicas"] = tuple(stripped)
        if found is not None and not data.get("password"):
            data["password"] = found
        return data

    def nodes(self) -> list[str]:
        """Return every URL of the shard, primary first."""
        return ([self.primary] if self.primary else []) + list(self.replicas)


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

    home: Path = DEFAULT_HOME
    shards: dict[str, ShardSettings] = Field(default_factory=dict)
    region_shards: dict[Region, str] = Field(default_factory=lambda: dict(DEFAULT_REGION_SHARDS))
    # The shard nearest to this process: catalog reads are served there.
    local_shard: str | None = None

    db_password: SecretStr | None = None
    # Migrations run as the schema owner; the application role can only run DML
    # and call the functions (see docs/reliability.md, least privilege).
    owner_user: str = "elearn_owner"
    owner_password: SecretStr | None = None
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
    # argon2id parameters (OWASP's minimum: 19 MiB, 2 passes, 1 lane). Hashes made
    # with other parameters are upgraded at the next successful login.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19456, ge=1024)
    argon2_parallelism: int = Field(default=1, ge=1)
    tax_rate: Decimal = Field(default=Decimal("0.10"), ge=0, le=1)
    twophase_grace_s: float = Field(default=30.0, ge=0)
    # How long a committing call keeps trying (on fresh connections, following a
    # promotion) to read back an ambiguous decision or to finish COMMIT PREPARED
    # on a participant before it raises OutcomeUnknown / CommitPending.
    twophase_resolve_s: float = Field(default=30.0, ge=0)
    recover_on_connect: bool = True
    # A background thread of each connect() object settles in-doubt two-phase
    # transactions this often (they hold row locks until settled); 0 disables it.
    recover_interval_s: float = Field(default=60.0, ge=0)

    mongo_uri: SecretStr | None = None
    mongo_db: str = "elearn"

    analytics_timeout_s: float = Field(default=60.0, gt=0)

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
        home = Path(data.get("home") or DEFAULT_HOME).expanduser()
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
    def _complete_topology(self) -> Settings:
        if not self.shards:
            raise ConfigurationError(
                "no shards configured: set ELEARN_SHARDS (or ELEARN_SHARDS__<shard>__PRIMARY ...) "
                f"or run `elearn cluster up` to build the embedded cluster under {self.home}"
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
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc


class HomeSettings(BaseSettings):
    """Only ``ELEARN_HOME``: what cluster commands need before any shard exists."""

    model_config = SettingsConfigDict(env_prefix="ELEARN_", env_file=".env", extra="ignore")

    home: Path = DEFAULT_HOME


def elearn_home() -> Path:
    """Return the absolute ELEARN_HOME (environment, ``.env``, or ``./.elearn``)."""
    return HomeSettings().home.expanduser().absolute()


def settings_file(home: Path) -> Path:
    """Return where the embedded cluster writes the settings it created."""
    return home / SETTINGS_FILE_NAME
