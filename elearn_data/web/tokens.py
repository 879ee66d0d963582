"""Access tokens (JWT) and causal tokens (HMAC) of the REST API.

An access token is a JWT signed with HS256 by the current key of the
:class:`~elearn_data.web.keys.Keyring`, its key id in the ``kid`` header; it
names the user (``sub``) and the role read from the user row at login, and
expires after ``Settings.web.access_token_ttl_s``.

A causal token is the caller's merged :class:`~elearn_data.sharding.consistency.CausalToken`
(per shard, the WAL position of the caller's last write), opaque to clients and
signed, so a client cannot make a worker wait for a position nobody wrote:
``<key id>.<base64url payload>.<base64url HMAC-SHA256>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from elearn_data.sharding.consistency import CausalToken
from elearn_data.web.keys import Keyring

ALGORITHM = "HS256"
# Longer headers are refused before any parsing (a token for 3 shards is ~100 bytes).
MAX_CAUSAL_TOKEN_CHARS = 2048
_CAUSAL_CONTEXT = b"elearn causal token v1"


class TokenError(Exception):
    """A token that is malformed, forged, expired or signed with an unknown key."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user id and role of a valid access token."""

    user_id: uuid.UUID
    role: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AccessTokens:
    """Issue and verify the API's access tokens."""

    def __init__(self, keys: Keyring, *, ttl_s: int, issuer: str) -> None:
        self._keys = keys
        self.ttl_s = ttl_s
        self._issuer = issuer

    def issue(self, user_id: uuid.UUID, role: str, *, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "sub": str(user_id),
            "role": role,
            "iss": self._issuer,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self._keys.current, algorithm=ALGORITHM, headers={"kid": self._keys.current_id}
        )

    def verify(self, token: str) -> Principal:
        """Return the principal of ``token``.

        Raises:
            TokenError: malformed, bad signature, unknown key id, wrong issuer, expired.
        """
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(str(header.get("kid", "")))
            if key is None or header.get("alg") != ALGORITHM:
                raise TokenError("the access token is signed with an unknown key")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": ["sub", "exp", "iat", "iss"]},
            )
            return Principal(uuid.UUID(str(claims["sub"])), str(claims.get("role", "")))
        except jwt.ExpiredSignatureError:
            raise TokenError("the access token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise TokenError("the access token is not valid") from None


class CausalTokens:
    """Sign and verify the ``X-Elearn-Causal-Token`` header."""

    def __init__(self, keys: Keyring, shards: tuple[str, ...]) -> None:
        self._macs = {
            kid: hmac.new(key, _CAUSAL_CONTEXT, hashlib.sha256).digest()
            for kid, key in keys.keys.items()
        }
        self._current = keys.current_id
        self._shards = frozenset(shards)

    def _mac(self, kid: str, payload: bytes) -> bytes | None:
        key = self._macs.get(kid)
        return None if key is None else hmac.new(key, payload, hashlib.sha256).digest()

    def encode(self, token: CausalToken) -> str:
        payload = json.dumps(dict(sorted(token.lsns.items())), separators=(",", ":")).encode()
        mac = self._mac(self._current, payload)
        assert mac is not None
        return f"{self._current}.{_b64(payload)}.{_b64(mac)}"

    def decode(self, header: str) -> CausalToken:
        """Return the token of a header this service signed.

        Raises:
            TokenError: not one of ours (malformed, forged, or signed by a dropped key).
        """
        if len(header) > MAX_CAUSAL_TOKEN_CHARS:
            raise TokenError("the causal token is too long")
        try:
            kid, body, sig = header.strip().split(".")
            payload = _unb64(body)
            expected = self._mac(kid, payload)
            if expected is None or not hmac.compare_digest(expected, _unb64(sig)):
                raise TokenError("the causal token was not issued by this service")
            raw = json.loads(payload)
            if not isinstance(raw, dict):
                raise TokenError("the causal token is malformed")
            lsns = {
                str(shard): int(lsn)
                for shard, lsn in raw.items()
                if shard in self._shards and isinstance(lsn, int) and lsn >= 0
            }
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise TokenError("the causal token is malformed") from None
        return CausalToken(lsns)
