"""The users phase: learners and instructors, their profiles, and the email directory.

Each region's users are created along a growth curve (more sign-ups in recent
months), named from the region's locales, and written to the region's shard;
each user's directory row (HMAC of the normalised email) goes to the shard its
hash names. Emails are lower-case ASCII and unique by construction: the local
part ends with the user's serial number, which no other user shares.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Final

import numpy as np

from elearn_data.regions import Region
from elearn_data.seeding import columns as col
from elearn_data.seeding.fakes import EMAIL_DOMAINS, NAMES_PER_LOCALE
from elearn_data.seeding.passwords import seed_user_password_hash
from elearn_data.seeding.plan import (
    DAY_MS,
    MINUTE_MS,
    WORLD_NOW_MS,
    WORLD_START_MS,
    Batch,
    Users,
    World,
)
from elearn_data.seeding.scales import INSTRUCTOR_REGION_WEIGHTS, REGION_WEIGHTS, split_exact

USER_COLUMNS: Final = (
    "id",
    "email",
    "password_hash",
    "first_name",
    "last_name",
    "role",
    "region",
    "status",
    "created_at",
    "updated_at",
    "last_login",
)
PROFILE_COLUMNS: Final = (
    "user_id",
    "country",
    "city",
    "phone",
    "bio",
    "timezone",
    "language",
    "avatar_url",
    "date_of_birth",
    "updated_at",
)
DIRECTORY_COLUMNS: Final = ("email_hash", "user_id", "region", "created_at")

YEAR_MS: Final = 365 * DAY_MS


def region_counts(world: World) -> dict[Region, tuple[int, int]]:
    """Return (students, instructors) per region: exact splits of the scale's figures."""
    students = split_exact(world.scale.students, REGION_WEIGHTS)
    instructors = split_exact(world.scale.instructors, INSTRUCTOR_REGION_WEIGHTS)
    return {r: (students[r], instructors[r]) for r in world.regions}


def plan_users(world: World, region: Region, students: int, instructors: int) -> Users:
    """Draw one region's users: creation times, ids, roles, statuses."""
    rng = world.rng("users", region)
    n = students + instructors
    # A growth curve: the density of sign-ups rises towards the present.
    u = np.sort(rng.random(n))
    span = WORLD_NOW_MS - DAY_MS - WORLD_START_MS
    created = WORLD_START_MS + (u**0.7 * span).astype(np.int64)
    hi, lo = col.owned_ids(region, created, rng)
    instructor = np.zeros(n, dtype=bool)
    if instructors:
        # Instructors joined early enough to have built courses.
        pool = max(instructors, int(n * 0.8))
        instructor[rng.choice(pool, size=instructors, replace=False)] = True
    active = rng.random(n) < 0.96
    active[instructor] = True
    return Users(region, hi, lo, created, instructor, active)


def user_batches(world: World) -> Iterator[Batch]:
    """Yield the users, user_profiles and email_directory rows of every region."""
    counts = region_counts(world)
    for region_index, region in enumerate(world.regions):
        students, instructors = counts[region]
        users = plan_users(world, region, students, instructors)
        world.users[region] = users
        rng = world.rng("people", region)
        size = world.scale.batch_rows
        for start in range(0, len(users.hi), size):
            stop = min(start + size, len(users.hi))
            yield from _user_rows(world, users, region_index, start=start, stop=stop, rng=rng)


def _user_rows(
    world: World,
    users: Users,
    region_index: int,
    *,
    start: int,
    stop: int,
    rng: np.random.Generator,
) -> Iterator[Batch]:
    region = users.region
    pool = world.pools[region]
    n = stop - start
    hi, lo = users.hi[start:stop], users.lo[start:stop]
    created = users.created_ms[start:stop]
    id_hex = col.hex_ids(hi, lo)

    locale = rng.choice(len(pool.locales), size=n, p=pool.weights)
    first_idx = locale * NAMES_PER_LOCALE + rng.integers(0, NAMES_PER_LOCALE, size=n)
    last_idx = locale * NAMES_PER_LOCALE + rng.integers(0, NAMES_PER_LOCALE, size=n)
    first_names = np.concatenate([p.first_names for p in pool.locales])[first_idx]
    last_names = np.concatenate([p.last_names for p in pool.locales])[last_idx]
    first_slugs = np.concatenate([p.first_slugs for p in pool.locales])[first_idx]
    last_slugs = np.concatenate([p.last_slugs for p in pool.locales])[last_idx]

    # Unique: the serial number is the user's alone (regions interleave by index).
    serial = (np.arange(start, stop, dtype=np.int64) * len(Region) + region_index + 1).astype(str)
    style = rng.integers(0, 4, size=n)
    first_part = np.where(style == 2, np.strings.slice(first_slugs, 0, 1), first_slugs)
    separator = np.array([".", "", "", "_"])[style]
    domain = np.array(EMAIL_DOMAINS)[rng.integers(0, len(EMAIL_DOMAINS), size=n)]
    emails = np.strings.add(
        np.strings.add(np.strings.add(first_part, separator), np.strings.add(last_slugs, serial)),
        np.strings.add("@", domain),
    )
    email_list: list[str] = emails.tolist()
    digests = [hmac.digest(world.email_key, e.encode("utf-8"), "sha256") for e in email_list]

    instructor = users.instructor[start:stop]
    role = np.where(instructor, "instructor", "student")
    status_draw = rng.random(n)
    status = np.where(
        users.active[start:stop], "active", np.where(status_draw < 0.75, "inactive", "suspended")
    )
    has_login = rng.random(n) < 0.85
    last_login = created + ((WORLD_NOW_MS - created) * rng.beta(3.0, 1.0, size=n)).astype(np.int64)
    updated = np.where(has_login, last_login, created)
    shard = world.shard_of(region)
    yield Batch(
        shard,
        "users",
        USER_COLUMNS,
        col.lines(
            [
                id_hex,
                email_list,
                # One salt per user: no two seeded users share a hash.
                [seed_user_password_hash(world.seed, uid) for uid in id_hex],
                first_names,
                last_names,
                role,
                region.value,
                status,
                col.timestamps(created),
                col.timestamps(updated),
                col.nullable(col.timestamps(last_login), has_login),
            ]
        ),
        n,
        advance=n,
    )

    countries = np.array([p.locale.country for p in pool.locales])[locale]
    languages = np.array([p.locale.language for p in pool.locales])[locale]
    cities_all = np.concatenate([p.cities for p in pool.locales])
    per_locale_cities = len(pool.locales[0].cities)
    city = cities_all[locale * per_locale_cities + rng.integers(0, per_locale_cities, size=n)]
    zones = [p.locale.timezones for p in pool.locales]
    zone_pick = rng.integers(0, 1 << 30, size=n)
    timezone = [
        zones[loc][pick % len(zones[loc])]
        for loc, pick in zip(locale.tolist(), zone_pick.tolist(), strict=True)
    ]
    dial = np.array([p.locale.dial for p in pool.locales])[locale]
    digits = rng.integers(0, 10_000_000_000, size=n, dtype=np.int64)
    area = np.strings.zfill((digits // 10_000_000 % 800 + 200).astype(str), 3)
    middle = np.strings.zfill((digits // 10_000 % 1000).astype(str), 3)
    tail = np.strings.zfill((digits % 10_000).astype(str), 4)
    north_american = dial == "+1"
    phone = np.where(
        north_american,
        np.strings.add(
            np.strings.add(np.strings.add("+1 (", area), np.strings.add(") ", middle)),
            np.strings.add("-", tail),
        ),
        np.strings.add(
            np.strings.add(np.strings.add(dial, " "), np.strings.add(area, " ")),
            np.strings.add(np.strings.add(middle, " "), tail),
        ),
    )
    bio = world.texts.bios[rng.integers(0, len(world.texts.bios), size=n)]
    avatar = np.strings.add(np.strings.add("https://avatars.example.com/u/", id_hex), ".jpg")
    age_ms = rng.integers(18, 66, size=n) * YEAR_MS + rng.integers(0, YEAR_MS, size=n)
    yield Batch(
        shard,
        "user_profiles",
        PROFILE_COLUMNS,
        col.lines(
            [
                id_hex,
                countries,
                col.nullable(city, rng.random(n) < 0.9),
                col.nullable(phone, rng.random(n) < 0.85),
                col.nullable(bio, rng.random(n) < 0.35),
                timezone,
                languages,
                col.nullable(avatar, rng.random(n) < 0.55),
                col.nullable(col.dates(created - age_ms), rng.random(n) < 0.7),
                col.timestamps(created + rng.integers(0, 30, size=n) * MINUTE_MS),
            ]
        ),
        n,
    )

    directory_shards = np.array([world.router.directory_shard(d) for d in digests])
    hashes = np.array(col.bytea(digests))
    created_text = col.timestamps(created)
    for target in sorted(set(directory_shards.tolist())):
        mask = directory_shards == target
        yield Batch(
            target,
            "email_directory",
            DIRECTORY_COLUMNS,
            col.lines([hashes[mask], id_hex[mask], region.value, created_text[mask]]),
            int(mask.sum()),
        )
