"""Faker vocabularies for seeding: built once per run, then sampled with numpy.

Faker takes 30-70 microseconds per name or city, far too slow to call per row
at a million learners. Each region therefore gets *pools* -- a few hundred first
names, last names, cities and texts per locale, drawn from Faker seeded with the
run's seed -- and rows pick from the pools with a seeded numpy generator. The
result is realistic (names of the learner's country, its phone format, time
zone and language tag) and identical for identical seeds.

Everything here is already in COPY text form: free text is escaped once, when
the pool is built (:func:`copy_escape`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

import numpy as np
from faker import Faker

from elearn_data.regions import Region

NAMES_PER_LOCALE: Final = 150
CITIES_PER_LOCALE: Final = 50
TEXTS: Final = 120


@dataclass(frozen=True, slots=True)
class Locale:
    """A country learners come from, with what their profile rows need."""

    code: str  # Faker locale
    country: str
    dial: str  # international dialling prefix
    timezones: tuple[str, ...]
    language: str  # BCP 47 tag
    weight: float  # share of the region's learners
    romanized: bool = False  # names in another script: emails use Faker's romanisation


REGION_LOCALES: Final[dict[Region, tuple[Locale, ...]]] = {
    Region.NORTH_AMERICA: (
        Locale(
            "en_US",
            "United States",
            "+1",
            ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
            "en-US",
            0.74,
        ),
        Locale("en_CA", "Canada", "+1", ("America/Toronto", "America/Vancouver"), "en-CA", 0.12),
        Locale("es_MX", "Mexico", "+52", ("America/Mexico_City",), "es-MX", 0.14),
    ),
    Region.SOUTH_AMERICA: (
        Locale("pt_BR", "Brazil", "+55", ("America/Sao_Paulo",), "pt-BR", 0.55),
        Locale("es_AR", "Argentina", "+54", ("America/Argentina/Buenos_Aires",), "es-AR", 0.20),
        Locale("es_CO", "Colombia", "+57", ("America/Bogota",), "es-CO", 0.15),
        Locale("es_CL", "Chile", "+56", ("America/Santiago",), "es-CL", 0.10),
    ),
    Region.EUROPE: (
        Locale("en_GB", "United Kingdom", "+44", ("Europe/London",), "en-GB", 0.22),
        Locale("de_DE", "Germany", "+49", ("Europe/Berlin",), "de-DE", 0.20),
        Locale("fr_FR", "France", "+33", ("Europe/Paris",), "fr-FR", 0.17),
        Locale("es_ES", "Spain", "+34", ("Europe/Madrid",), "es-ES", 0.12),
        Locale("it_IT", "Italy", "+39", ("Europe/Rome",), "it-IT", 0.11),
        Locale("pl_PL", "Poland", "+48", ("Europe/Warsaw",), "pl-PL", 0.10),
        Locale("nl_NL", "Netherlands", "+31", ("Europe/Amsterdam",), "nl-NL", 0.08),
    ),
    Region.AFRICA: (
        Locale("en_NG", "Nigeria", "+234", ("Africa/Lagos",), "en-NG", 0.40),
        Locale("en_KE", "Kenya", "+254", ("Africa/Nairobi",), "en-KE", 0.22),
        Locale("zu_ZA", "South Africa", "+27", ("Africa/Johannesburg",), "en-ZA", 0.25),
        Locale("tw_GH", "Ghana", "+233", ("Africa/Accra",), "en-GH", 0.13),
    ),
    Region.ASIA: (
        Locale("en_IN", "India", "+91", ("Asia/Kolkata",), "en-IN", 0.42),
        Locale("ja_JP", "Japan", "+81", ("Asia/Tokyo",), "ja-JP", 0.15, romanized=True),
        Locale("id_ID", "Indonesia", "+62", ("Asia/Jakarta",), "id-ID", 0.16),
        Locale("vi_VN", "Vietnam", "+84", ("Asia/Ho_Chi_Minh",), "vi-VN", 0.12),
        Locale("fil_PH", "Philippines", "+63", ("Asia/Manila",), "en-PH", 0.15),
    ),
    Region.OCEANIA: (
        Locale(
            "en_AU",
            "Australia",
            "+61",
            ("Australia/Sydney", "Australia/Melbourne", "Australia/Perth"),
            "en-AU",
            0.80,
        ),
        Locale("en_NZ", "New Zealand", "+64", ("Pacific/Auckland",), "en-NZ", 0.20),
    ),
}

EMAIL_DOMAINS: Final = (
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "inbox.example.org",
    "learners.example.net",
)


def copy_escape(value: str) -> str:
    """Return ``value`` escaped for PostgreSQL's COPY text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def slug(value: str) -> str:
    """Return the lower-case ASCII letters of ``value`` ("José" -> "jose"), or "learner"."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    letters = "".join(c for c in folded.lower() if "a" <= c <= "z")
    return letters or "learner"


def faker_for(locale: str, seed: int, purpose: str) -> Faker:
    """Return a Faker of ``locale`` seeded for (seed, purpose): the same words every run."""
    fake = Faker(locale)
    fake.seed_instance(f"{seed}:{locale}:{purpose}")
    return fake


@dataclass(frozen=True)
class LocalePool:
    """What rows of one locale draw from (numpy arrays of str, COPY-escaped)."""

    locale: Locale
    first_names: np.ndarray
    first_slugs: np.ndarray
    last_names: np.ndarray
    last_slugs: np.ndarray
    cities: np.ndarray


@dataclass(frozen=True)
class RegionPool:
    """The locales of one region and their pools."""

    region: Region
    locales: tuple[LocalePool, ...]
    weights: np.ndarray  # share of each locale


def _names(fake: Faker, locale: Locale) -> tuple[list[str], list[str], list[str], list[str]]:
    firsts: list[str] = []
    first_slugs: list[str] = []
    lasts: list[str] = []
    last_slugs: list[str] = []
    for _ in range(NAMES_PER_LOCALE):
        if locale.romanized:
            first, _kana, first_roman = fake.first_name_pair()
            last, _kana, last_roman = fake.last_name_pair()
        else:
            first = first_roman = fake.first_name()
            last = last_roman = fake.last_name()
        firsts.append(copy_escape(first[:100]))
        first_slugs.append(slug(first_roman)[:30])
        lasts.append(copy_escape(last[:100]))
        last_slugs.append(slug(last_roman)[:30])
    return firsts, first_slugs, lasts, last_slugs


def _cities(fake: Faker) -> list[str]:
    """Return CITIES_PER_LOCALE city names.

    Some Faker locales (it_IT) build their city list from a set, whose order
    changes with PYTHONHASHSEED; there the list is sorted and sampled with the
    locale's seeded generator, so that two processes pick the same cities.
    """
    listed = next((p.cities for p in fake.providers if hasattr(p, "cities")), None)
    if isinstance(listed, list | tuple) and listed and all(isinstance(c, str) for c in listed):
        ordered = sorted(set(listed))
        return [fake.random.choice(ordered) for _ in range(CITIES_PER_LOCALE)]
    return [fake.city() for _ in range(CITIES_PER_LOCALE)]


def build_region_pool(region: Region, seed: int) -> RegionPool:
    """Return the Faker pools of one region for ``seed``."""
    pools = []
    for locale in REGION_LOCALES[region]:
        fake = faker_for(locale.code, seed, "people")
        firsts, first_slugs, lasts, last_slugs = _names(fake, locale)
        cities = [copy_escape(c[:100]) for c in _cities(fake)]
        pools.append(
            LocalePool(
                locale=locale,
                first_names=np.array(firsts),
                first_slugs=np.array(first_slugs),
                last_names=np.array(lasts),
                last_slugs=np.array(last_slugs),
                cities=np.array(cities),
            )
        )
    weights = np.array([p.locale.weight for p in pools], dtype=np.float64)
    return RegionPool(region, tuple(pools), weights / weights.sum())


@dataclass(frozen=True)
class TextPool:
    """Free texts shared by every region (biographies, course descriptions)."""

    bios: np.ndarray
    descriptions: list[str]
    sentences: list[str]


def build_text_pool(seed: int) -> TextPool:
    """Return the free-text pools for ``seed`` (English; COPY-escaped)."""
    fake = faker_for("en_US", seed, "texts")
    bios = [copy_escape(fake.paragraph(nb_sentences=3)) for _ in range(TEXTS)]
    descriptions = [fake.paragraph(nb_sentences=2) for _ in range(TEXTS)]
    sentences = [fake.sentence(nb_words=8) for _ in range(TEXTS)]
    return TextPool(np.array(bios), descriptions, sentences)


# Review texts by rating: what learners actually write, with a topic slot.
REVIEW_TEXTS: Final[dict[int, tuple[str, ...]]] = {
    5: (
        "Excellent course! The {topic} examples were clear and practical.",
        "One of the best {topic} courses I have taken. Highly recommended.",
        "The instructor explains {topic} really well. Loved the exercises.",
        "Exactly what I needed to get productive with {topic}.",
        "Great pacing and great projects. I finally understand {topic}.",
        "Worth every minute. The quizzes helped the {topic} concepts stick.",
    ),
    4: (
        "Very good introduction to {topic}; a few lessons felt rushed.",
        "Solid {topic} content. I would have liked more hands-on exercises.",
        "Good course overall, the later {topic} modules are the strongest.",
        "Clear explanations of {topic}. Audio could be better in places.",
    ),
    3: (
        "Decent overview of {topic}, but it stays at the surface.",
        "Some {topic} lessons are great, others are outdated.",
        "OK for beginners in {topic}; experienced learners will be bored.",
    ),
    2: (
        "The {topic} material is disorganised and hard to follow.",
        "Too much theory, too little {topic} practice.",
        "Expected more depth on {topic} for this level.",
    ),
    1: (
        "Not what the description promised about {topic}.",
        "Outdated {topic} content and no answers from the instructor.",
        "I could not follow the {topic} lessons at all.",
    ),
}
