"""The API key format: prefix, length, alphabet, randomness, checksum, display prefix, digest, key ids."""

from __future__ import annotations

import hashlib
import math
import re
import string
import zlib
from collections import Counter
from typing import cast

import pytest
from sqlalchemy import String

from pagemill.models import ApiKey
from pagemill.tenancy import keys

ALPHABET = string.digits + string.ascii_letters
PREFIX = "pm_live_"
RANDOM_CHARS = 32
CHECKSUM_CHARS = 6
TOTAL = len(PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS  # 46


def _random_part(secret: str) -> str:
    return secret[len(PREFIX) : len(PREFIX) + RANDOM_CHARS]


@pytest.fixture(scope="module")
def many_keys() -> list[keys.NewKey]:
    return [keys.generate_key() for _ in range(2000)]


# --- format -------------------------------------------------------------------------------------------------


def test_a_key_is_the_prefix_32_random_base62_chars_and_a_6_char_checksum() -> None:
    new = keys.generate_key()
    assert keys.KEY_PREFIX == PREFIX
    assert keys.KEY_LENGTH == TOTAL == 46
    assert len(new.secret) == TOTAL
    assert new.secret.startswith(PREFIX)
    assert re.fullmatch(r"pm_live_[0-9A-Za-z]{38}", new.secret)
    assert keys.looks_like_key(new.secret)


def test_every_generated_key_has_the_format_and_a_valid_checksum(many_keys: list[keys.NewKey]) -> None:
    for new in many_keys:
        assert len(new.secret) == TOTAL and new.secret.startswith(PREFIX)
        assert set(new.secret[len(PREFIX) :]) <= set(ALPHABET)
        assert keys.looks_like_key(new.secret), new.secret


def test_the_key_fits_the_columns_that_store_its_parts() -> None:
    new = keys.generate_key()
    columns = ApiKey.__table__.c
    prefix_column = cast(String, columns.prefix.type).length
    hash_column = cast(String, columns.secret_hash.type).length
    id_column = cast(String, columns.id.type).length
    assert prefix_column is not None and hash_column is not None and id_column is not None
    assert len(new.prefix) <= prefix_column
    assert len(new.digest) == hash_column == 64
    assert len(keys.new_key_id()) <= id_column


# --- randomness ---------------------------------------------------------------------------------------------


def test_keys_carry_at_least_128_bits_of_randomness(many_keys: list[keys.NewKey]) -> None:
    randoms = [_random_part(new.secret) for new in many_keys]
    # 32 characters, each drawn from the whole 62-character alphabet: log2(62**32) = 190 bits.
    assert all(len(part) == RANDOM_CHARS for part in randoms)
    seen = Counter("".join(randoms))
    assert set(seen) == set(ALPHABET), f"never drawn: {sorted(set(ALPHABET) - set(seen))}"
    assert RANDOM_CHARS * math.log2(len(seen)) >= 128
    # Each character is roughly uniform (expected ~1032 occurrences of each in 64,000 draws).
    expected = len(randoms) * RANDOM_CHARS / len(ALPHABET)
    assert min(seen.values()) > expected * 0.7 and max(seen.values()) < expected * 1.3, seen
    # Every position varies on its own (no fixed or sequential characters).
    for position in range(RANDOM_CHARS):
        assert len({part[position] for part in randoms}) >= 55, f"position {position} barely varies"


def test_keys_never_repeat(many_keys: list[keys.NewKey]) -> None:
    assert len({new.secret for new in many_keys}) == len(many_keys)
    assert len({new.digest for new in many_keys}) == len(many_keys)
    # Even the 8 displayed characters (47 bits) almost never collide among 2000 keys.
    assert len({new.prefix for new in many_keys}) >= len(many_keys) - 1


# --- checksum -----------------------------------------------------------------------------------------------


def test_every_single_character_change_is_caught(many_keys: list[keys.NewKey]) -> None:
    substitutes = ALPHABET + "_-+/= .é\x00"
    for new in many_keys[:25]:
        secret = new.secret
        for position in range(TOTAL):
            for char in substitutes:
                if char == secret[position]:
                    continue
                changed = secret[:position] + char + secret[position + 1 :]
                assert not keys.looks_like_key(changed), (secret, position, char)


def test_every_truncation_and_extension_is_caught(many_keys: list[keys.NewKey]) -> None:
    for new in many_keys[:50]:
        secret = new.secret
        for length in range(TOTAL):
            assert not keys.looks_like_key(secret[:length]), (secret, length)
            assert not keys.looks_like_key(secret[TOTAL - length :]), (secret, length)
        for char in ALPHABET[:10]:
            assert not keys.looks_like_key(secret + char)
            assert not keys.looks_like_key(char + secret)


def test_swapping_two_neighbouring_characters_is_caught(many_keys: list[keys.NewKey]) -> None:
    for new in many_keys[:100]:
        secret = new.secret
        for position in range(len(PREFIX), TOTAL - 1):
            if secret[position] == secret[position + 1]:
                continue
            swapped = secret[:position] + secret[position + 1] + secret[position] + secret[position + 2 :]
            assert not keys.looks_like_key(swapped), (secret, position)


def test_the_checksum_is_the_crc32_of_the_rest_in_6_base62_characters(many_keys: list[keys.NewKey]) -> None:
    # The documented format, so that secret scanners can verify a candidate key without the service.
    for new in many_keys[:200]:
        body, checksum = new.secret[:-CHECKSUM_CHARS], new.secret[-CHECKSUM_CHARS:]
        value = 0
        for char in checksum:
            value = value * 62 + ALPHABET.index(char)
        assert value == zlib.crc32(body.encode()), new.secret


def test_a_well_formed_body_needs_its_own_checksum(many_keys: list[keys.NewKey]) -> None:
    first, second = many_keys[0].secret, many_keys[1].secret
    # The body of one key with the checksum of another.
    assert not keys.looks_like_key(first[:-CHECKSUM_CHARS] + second[-CHECKSUM_CHARS:])


@pytest.mark.parametrize(
    "value",
    [
        "",
        PREFIX,
        "pm_test_" + "a" * (RANDOM_CHARS + CHECKSUM_CHARS),
        "PM_LIVE_" + "a" * (RANDOM_CHARS + CHECKSUM_CHARS),
        " " + "a" * (TOTAL - 1),
        "Bearer pm_live_",
        "x" * TOTAL,
    ],
)
def test_values_that_are_not_keys_are_refused(value: str) -> None:
    assert not keys.looks_like_key(value)


def test_surrounding_whitespace_is_not_part_of_a_key() -> None:
    secret = keys.generate_key().secret
    assert not keys.looks_like_key(secret + "\n")
    assert not keys.looks_like_key(" " + secret)


# --- display prefix, digest, comparison, ids ----------------------------------------------------------------


def test_the_display_prefix_is_pm_live_and_the_first_8_random_characters() -> None:
    new = keys.generate_key()
    assert new.prefix == keys.display_prefix(new.secret) == new.secret[:16]
    assert new.prefix.startswith(PREFIX) and len(new.prefix) == len(PREFIX) + 8
    # What is shown is far from enough to rebuild the key: 30 characters (178 bits) stay hidden.
    assert len(new.secret) - len(new.prefix) == 30


def test_the_digest_is_the_sha256_hex_of_the_whole_key() -> None:
    new = keys.generate_key()
    assert new.digest == keys.digest_of(new.secret) == hashlib.sha256(new.secret.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", new.digest)
    assert new.secret not in new.digest
    assert keys.digest_of(new.secret) == keys.digest_of(new.secret), "deterministic"
    changed = new.secret[:-1] + ("x" if new.secret[-1] != "x" else "y")  # a real change, every time
    assert keys.digest_of(changed) != new.digest


def test_digests_match_compares_whole_values() -> None:
    digest = keys.generate_key().digest
    assert keys.digests_match(digest, digest) is True
    assert keys.digests_match(digest, str(digest)) is True
    other = keys.generate_key().digest
    assert keys.digests_match(digest, other) is False
    # Differences anywhere count, including a single last character and the letter case.
    last = "0" if digest[-1] != "0" else "1"
    assert keys.digests_match(digest, digest[:-1] + last) is False
    assert keys.digests_match(digest, digest.upper()) is (digest == digest.upper())


@pytest.mark.parametrize("presented", ["", "abc", "f" * 63, "f" * 65, "é" * 64, "\x00" * 64])
def test_digests_match_answers_false_for_any_other_value_instead_of_raising(presented: str) -> None:
    # hmac.compare_digest raises TypeError on non-ASCII str; the helper compares bytes, so any input is safe.
    assert keys.digests_match("f" * 64, presented) is False


def test_key_ids_are_key_and_16_hex_characters_and_unique() -> None:
    ids = [keys.new_key_id() for _ in range(5000)]
    assert all(re.fullmatch(r"key_[0-9a-f]{16}", key_id) for key_id in ids)
    assert len(set(ids)) == len(ids)
