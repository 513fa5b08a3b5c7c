"""The API key format: ``pm_live_`` + 32 base62 characters (190 random bits) + a 6-character checksum.

The checksum (CRC-32 of the rest, in base62) lets a typo or a truncated paste be refused without a
database lookup, and lets secret scanners recognise a real key. The service stores only the SHA-256 of a
key and its display prefix (``pm_live_`` and the first 8 random characters), which is how keys are found:
by prefix, then by comparing digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from dataclasses import dataclass

KEY_PREFIX = "pm_live_"
_ALPHABET = string.digits + string.ascii_letters
_RANDOM_CHARS = 32  # 32 * log2(62) = 190 bits
_CHECKSUM_CHARS = 6  # 62**6 > 2**32
_DISPLAY_CHARS = 8
KEY_LENGTH = len(KEY_PREFIX) + _RANDOM_CHARS + _CHECKSUM_CHARS


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: the secret (shown once), its display prefix and its digest (stored)."""

    secret: str
    prefix: str
    digest: str


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_CHARS)


def generate_key() -> NewKey:
    """A new random key."""
    body = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))
    secret = body + _checksum(body)
    return NewKey(secret=secret, prefix=display_prefix(secret), digest=digest_of(secret))


def looks_like_key(value: str) -> bool:
    """True when ``value`` has the key format and a correct checksum (not that it exists)."""
    if len(value) != KEY_LENGTH or not value.startswith(KEY_PREFIX):
        return False
    rest = value[len(KEY_PREFIX) :]
    if any(char not in _ALPHABET for char in rest):
        return False
    body, checksum = value[:-_CHECKSUM_CHARS], value[-_CHECKSUM_CHARS:]
    return hmac.compare_digest(_checksum(body), checksum)


def display_prefix(secret: str) -> str:
    """The part of a key that may be shown and stored in clear: ``pm_live_`` and 8 characters."""
    return secret[: len(KEY_PREFIX) + _DISPLAY_CHARS]


def digest_of(secret: str) -> str:
    """SHA-256 of a key, hex: all the service keeps of it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def digests_match(stored: str, presented: str) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(stored.encode(), presented.encode())


def new_key_id() -> str:
    """A public id for a key (used to list, revoke and rate-limit it), e.g. ``key_3f9c0a1b2c4d5e6f``."""
    return "key_" + secrets.token_hex(8)
