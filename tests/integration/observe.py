"""Observe which physical servers ran statements (by the port psycopg2 is connected to)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database


@dataclass
class Statements:
    """(shard, role, sql) of every statement executed while recording."""

    port_roles: dict[int, tuple[str, str]]
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def nodes(self) -> set[tuple[str, str]]:
        return {(shard, role) for shard, role, _ in self.seen}

    def shards(self) -> set[str]:
        return {shard for shard, _, _ in self.seen}

    def roles(self) -> set[str]:
        return {role for _, role, _ in self.seen}


# The Database's own background threads (recovery, the outbox relay) run passes
# on every primary whenever they are due: not what a test's calls sent.
BACKGROUND_THREADS = ("elearn-recover", "elearn-outbox")


@contextmanager
def recording(db: Database, cluster: LocalCluster) -> Iterator[Statements]:
    """Record the node of every statement the Database sends (not its background work)."""
    port_roles = {n.port: (n.shard, n.role) for n in cluster.status()}
    record = Statements(port_roles)

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name.startswith(BACKGROUND_THREADS):
            return
        port = int(cursor.connection.info.port)
        shard, role = port_roles[port]
        record.seen.append((shard, role, statement))

    engines = [node.engine for node in db.cluster.engines.nodes()]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
    try:
        yield record
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", before)
