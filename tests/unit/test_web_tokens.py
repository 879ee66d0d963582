"""Access and causal tokens, key rotation, and the error mapping of the REST API."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from elearn_data import errors
from elearn_data.config import Settings
from elearn_data.sharding.consistency import CausalToken
from elearn_data.web.errors import domain_response, public_name
from elearn_data.web.keys import Keyring, ensure_home_keys, key_file, load_keyring, rotate_home_keys
from elearn_data.web.tokens import AccessTokens, CausalTokens, TokenError

SHARDS = ("apac", "eu", "na")


def ring(kid: str = "k1", key: bytes = b"k" * 32, **more: bytes) -> Keyring:
    return Keyring(kid, {kid: key, **more})


def test_an_access_token_names_the_user_and_role() -> None:
    tokens = AccessTokens(ring(), ttl_s=60, issuer="elearn")
    user = uuid.uuid4()
    who = tokens.verify(tokens.issue(user, "instructor"))
    assert (who.user_id, who.role) == (user, "instructor")


def test_an_expired_forged_or_foreign_token_is_refused() -> None:
    tokens = AccessTokens(ring(), ttl_s=60, issuer="elearn")
    user = uuid.uuid4()
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(tokens.issue(user, "student", now=1_000_000))
    other_key = AccessTokens(ring(key=b"x" * 32), ttl_s=60, issuer="elearn")
    with pytest.raises(TokenError):
        tokens.verify(other_key.issue(user, "student"))
    other_issuer = AccessTokens(ring(), ttl_s=60, issuer="someone-else")
    with pytest.raises(TokenError):
        tokens.verify(other_issuer.issue(user, "student"))
    with pytest.raises(TokenError):
        tokens.verify("not-a-token")
    good = tokens.issue(user, "student")
    header, claims, signature = good.split(".")
    with pytest.raises(TokenError):
        tokens.verify(f"{header}.{claims}.{signature[:-2]}AA")


def test_rotation_keeps_tokens_of_the_previous_key_valid() -> None:
    old = AccessTokens(ring("k1", b"1" * 32), ttl_s=60, issuer="elearn")
    rotated = AccessTokens(ring("k2", b"2" * 32, k1=b"1" * 32), ttl_s=60, issuer="elearn")
    user = uuid.uuid4()
    assert rotated.verify(old.issue(user, "student")).user_id == user
    dropped = AccessTokens(ring("k3", b"3" * 32), ttl_s=60, issuer="elearn")
    with pytest.raises(TokenError, match="unknown key"):
        dropped.verify(old.issue(user, "student"))


def test_a_causal_token_round_trips_and_cannot_be_forged() -> None:
    causal = CausalTokens(ring(), SHARDS)
    token = CausalToken({"eu": 123, "na": 7})
    header = causal.encode(token)
    assert causal.decode(header) == token
    kid, body, mac = header.split(".")
    with pytest.raises(TokenError):
        causal.decode(f"{kid}.{body}.{mac[::-1]}")
    with pytest.raises(TokenError):
        CausalTokens(ring(key=b"z" * 32), SHARDS).decode(header)
    with pytest.raises(TokenError):
        causal.decode("garbage")
    with pytest.raises(TokenError):
        causal.decode("k1." + "A" * 5000 + ".x")
    # Unknown shards are dropped (a token of another deployment's topology).
    other = CausalTokens(ring(), ("eu", "mars"))
    assert causal.decode(other.encode(CausalToken({"mars": 5, "eu": 1}))) == CausalToken({"eu": 1})


def test_home_keys_are_private_and_rotate(tmp_path: Path) -> None:
    path = ensure_home_keys(tmp_path)
    assert path == key_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = json.loads(path.read_text())
    assert ensure_home_keys(tmp_path).read_text() == path.read_text()
    new = rotate_home_keys(tmp_path)
    after = json.loads(path.read_text())
    assert after["current"] == new != first["current"]
    assert first["current"] in after["keys"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keys_from_settings_win_and_short_keys_are_refused(tmp_path: Path) -> None:
    shards = {"na": {"primary": "postgresql://u@h:1/d"}}
    region_shards = {
        r: "na" for r in ("north_america", "south_america", "europe", "africa", "asia", "oceania")
    }
    settings = Settings(
        home=tmp_path,
        shards=shards,
        region_shards=region_shards,
        web={
            "signing_key": "s" * 40,
            "signing_key_id": "prod-2",
            "previous_keys": {"prod-1": "p" * 40},
        },
    )
    keys = load_keyring(settings)
    assert keys.current_id == "prod-2"
    assert set(keys.keys) == {"prod-2", "prod-1"}
    assert not key_file(tmp_path).exists()
    weak = settings.model_copy(
        update={"web": settings.web.model_copy(update={"signing_key": None})}
    )
    assert load_keyring(weak).current_id.startswith("k")  # generated under the home
    short = Settings(
        home=tmp_path, shards=shards, region_shards=region_shards, web={"signing_key": "short"}
    )
    with pytest.raises(errors.ConfigurationError, match="shorter than 32"):
        load_keyring(short)
    assert "s" * 40 not in repr(settings)


def test_login_throttled_maps_to_429_with_retry_after() -> None:
    throttled = errors.LoginThrottled(2.2)
    response = domain_response(throttled)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert json.loads(response.body) == {"error": "LoginThrottled", "message": str(throttled)}


@pytest.mark.parametrize(
    ("exc", "status", "name"),
    [
        (errors.NotFound("course x not found"), 404, "NotFound"),
        (errors.UnknownRegion("mars", ["europe"]), 422, "UnknownRegion"),
        (errors.DuplicateEmail("a@b.org is registered"), 409, "DuplicateEmail"),
        (errors.CourseFull("full"), 409, "CourseFull"),
        (errors.AlreadyEnrolled("again"), 409, "AlreadyEnrolled"),
        (errors.InvalidState("no lessons"), 409, "InvalidState"),
        (
            errors.ShardUnavailable("eu", "could not connect to 10.0.0.1 password=x"),
            503,
            "ShardUnavailable",
        ),
        (errors.ConfigurationError("db_password missing"), 500, "InternalError"),
    ],
)
def test_every_library_error_has_its_status(
    exc: errors.ElearnDataError, status: int, name: str
) -> None:
    response = domain_response(exc)
    assert response.status_code == status
    body = json.loads(response.body)
    assert body["error"] == name
    assert "password" not in body["message"] and "10.0.0.1" not in body["message"]


def test_a_private_subclass_is_named_by_its_public_base() -> None:
    class ForeignThing(errors.NotFound):
        pass

    assert public_name(ForeignThing("x")) == "NotFound"
