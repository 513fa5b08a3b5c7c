"""Sealing the secrets a job keeps while it runs (the password of an encrypted PDF), so that the database,
its write-ahead log, its backups and its replicas only ever hold ciphertext.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under ``secrets.key``; ``secrets.previous_keys``
still open what older keys sealed, so a key can be rotated while jobs run. In embedded mode, where the API
and the workers share a data folder, the key is made on first use and kept in ``DATA_DIR/secret.key``
(mode 0600). Elsewhere it must be set, the same on the API and every worker: without it a password is
refused at submission (``SECRETS_NOT_CONFIGURED``) rather than stored in the clear.

A sealed value only lives while its job runs: the repository wipes it when the job reaches a final state.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from pagemill.errors import SecretsNotConfigured
from pagemill.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"


def seal_secret(plaintext: str, settings: Settings) -> str:
    """Encrypt ``plaintext`` under the current key; SecretsNotConfigured if there is none."""
    return _fernet(settings).encrypt(plaintext.encode()).decode("ascii")


def open_secret(sealed: str | None, settings: Settings) -> str | None:
    """Decrypt what :func:`seal_secret` made (None stays None).

    SecretsNotConfigured if this process has no key, or none of its keys opens the value (the API and this
    worker were given different keys, or the key was replaced without keeping the old one in
    ``secrets.previous_keys``).
    """
    if sealed is None:
        return None
    try:
        return _fernet(settings).decrypt(sealed.encode("ascii")).decode()
    except InvalidToken:
        raise SecretsNotConfigured(
            "The document's password cannot be decrypted here: secrets.key differs between the API and "
            "this worker, or was changed without keeping the old key in secrets.previous_keys."
        ) from None


def derived_key(settings: Settings, context: bytes, *, missing: str) -> bytes:
    """A signing key for one purpose (``context``), derived from ``secrets.key`` (embedded mode: the key
    file). Derived, never the Fernet key itself: a signature must reveal nothing usable against sealed
    secrets. SecretsNotConfigured with the message ``missing`` when this server has no key."""
    if settings.secrets.key is not None:
        secret = settings.secrets.key.get_secret_value().encode()
    elif settings.is_embedded:
        secret = load_or_create_key_file(settings.data_dir / KEY_FILE_NAME)
    else:
        raise SecretsNotConfigured(missing)
    return hmac.new(secret, context, hashlib.sha256).digest()


def _fernet(settings: Settings) -> MultiFernet:
    """The current key first (it seals), then the previous ones (they only open)."""
    current = settings.secrets.key
    key = current.get_secret_value().encode() if current is not None else _embedded_key(settings)
    previous = [old.get_secret_value().encode() for old in settings.secrets.previous_keys]
    return MultiFernet([Fernet(key), *(Fernet(old) for old in previous)])


def _embedded_key(settings: Settings) -> bytes:
    """The key kept in the data folder, made on first use; only in embedded mode."""
    if not settings.is_embedded:
        # The data folder is not shared between API replicas and workers on other hosts: a key made here
        # would open nothing elsewhere.
        raise SecretsNotConfigured()
    return load_or_create_key_file(settings.data_dir / KEY_FILE_NAME)


def load_or_create_key_file(path: Path) -> bytes:
    """Read the Fernet key at ``path``, creating it (mode 0600) if missing.

    Safe when the API and worker processes race to create it: the key is written to a private temporary
    file that is then hard-linked into place, which fails if another process got there first, so every
    process ends up reading the one complete key.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
            log.info("made a new secrets key in %s", path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); it should be 0600", path, mode)
    return key
