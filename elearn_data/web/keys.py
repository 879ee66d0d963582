"""Signing keys of the REST API: from settings, or generated once per ELEARN_HOME.

Access tokens (JWT) and causal tokens are signed with the current key and carry
its key id; verification accepts the current key and every previous one still
listed, so a rotation never logs anybody out. Keys come from
``Settings.web.signing_key`` (with ``signing_key_id`` and ``previous_keys``) when
set; otherwise from ``<home>/web/signing-keys.json`` (mode 0600), which
:func:`ensure_home_keys` creates before the workers start and
:func:`rotate_home_keys` rotates.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from elearn_data.config import Settings
from elearn_data.errors import ConfigurationError

KEY_FILE = Path("web") / "signing-keys.json"
# Keys kept for verification after a rotation (older ones are dropped).
KEEP_PREVIOUS = 2
_MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class Keyring:
    """The current signing key and every key still accepted, by key id."""

    current_id: str
    keys: dict[str, bytes]

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]

    def get(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)


def key_file(home: Path) -> Path:
    """Return where the generated keys of ``home`` live."""
    return home / KEY_FILE


def _write_private(path: Path, payload: dict[str, object]) -> None:
    """Write ``payload`` to ``path`` atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> Keyring:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = {str(k): bytes.fromhex(v) for k, v in data["keys"].items()}
        current = str(data["current"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"cannot read the signing keys in {path}: {exc}") from None
    if current not in keys:
        raise ConfigurationError(f"the current key id {current!r} has no key in {path}")
    return Keyring(current, keys)


def ensure_home_keys(home: Path) -> Path:
    """Create ``<home>/web/signing-keys.json`` with a fresh key unless it exists; return it."""
    path = key_file(home)
    if not path.exists():
        kid = f"k{secrets.token_hex(4)}"
        candidate = {"current": kid, "keys": {kid: secrets.token_hex(_MIN_KEY_BYTES)}}
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(candidate, out)
            # link() fails if another process won the race: its key stays.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return path


def rotate_home_keys(home: Path) -> str:
    """Make a new key current in ``home``'s key file (the previous ones stay valid); return its id.

    Running servers pick the new key up at their next start.
    """
    path = ensure_home_keys(home)
    ring = _read(path)
    kid = f"k{secrets.token_hex(4)}"
    kept = [ring.current_id, *(k for k in ring.keys if k != ring.current_id)][:KEEP_PREVIOUS]
    keys = {kid: secrets.token_hex(_MIN_KEY_BYTES), **{k: ring.keys[k].hex() for k in kept}}
    _write_private(path, {"current": kid, "keys": keys})
    return kid


def load_keyring(settings: Settings) -> Keyring:
    """Return the keys of ``settings.web``, or those of the home key file (created if missing).

    Raises:
        ConfigurationError: a key shorter than 32 bytes, or an unreadable key file.
    """
    web = settings.web
    if web.signing_key is not None:
        keys = {web.signing_key_id: web.signing_key.get_secret_value().encode()}
        for kid, secret in web.previous_keys.items():
            keys.setdefault(kid, secret.get_secret_value().encode())
        ring = Keyring(web.signing_key_id, keys)
    else:
        ring = _read(ensure_home_keys(settings.home))
    for kid, key in ring.keys.items():
        if len(key) < _MIN_KEY_BYTES:
            raise ConfigurationError(
                f"signing key {kid!r} is shorter than {_MIN_KEY_BYTES} bytes (web.signing_key)"
            )
    return ring
