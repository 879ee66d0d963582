"""The generator alone (no database): same seed, same bytes, in any process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

# Builds the small data set's COPY payloads and content documents without a
# database and prints their digest (settings name shards that are never contacted).
PROGRAM = textwrap.dedent(
    """
    import hashlib, sys
    from elearn_data.config import Settings
    from elearn_data.regions import Region
    from elearn_data.seeding import assessments, billing, catalog, documents, learning, people
    from elearn_data.seeding.fakes import build_region_pool, build_text_pool
    from elearn_data.seeding.plan import World
    from elearn_data.seeding.runner import _enrollments_and_seats
    from elearn_data.seeding.scales import get_scale
    from elearn_data.sharding.routing import Router

    seed = int(sys.argv[1])
    url = "postgresql://nobody@127.0.0.1:1/none"
    settings = Settings(shards={s: {"primary": url} for s in ("na", "eu", "apac")})
    world = World(
        seed=seed, scale=get_scale("small"), router=Router(settings), regions=tuple(Region),
        pools={r: build_region_pool(r, seed) for r in Region}, texts=build_text_pool(seed),
        password_hash="x", email_key=b"key", tax_rate=settings.tax_rate, content_limit=None,
    )
    digest = hashlib.sha256()
    for phase in (people.user_batches, catalog.catalog_batches, _enrollments_and_seats,
                  learning.progress_batches, learning.review_batches,
                  assessments.assessment_batches, billing.payment_batches):
        for batch in phase(world):
            digest.update(f"{batch.shard}:{batch.table}:{batch.rows}".encode())
            digest.update(batch.payload)
    for raw in documents.content_documents(world):
        digest.update(repr(sorted(raw.items())).encode())
    sample = documents.preference_sample(world)
    for raw in documents.preference_documents(world, sample):
        digest.update(repr(sorted(raw.items())).encode())
    print(digest.hexdigest())
    """
)


def _digest(seed: int, hash_seed: str, tmp_path: Path) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "ELEARN_HOME": str(tmp_path)}
    env = {k: v for k, v in env.items() if not k.startswith("ELEARN_SHARDS")}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(seed)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


def test_one_seed_gives_the_same_bytes_in_processes_with_different_hash_seeds(
    tmp_path: Path,
) -> None:
    # Faker's it_IT cities come from a set: without care, their order follows
    # PYTHONHASHSEED, and so would every Italian learner's profile.
    assert _digest(3, "1", tmp_path) == _digest(3, "2", tmp_path)
