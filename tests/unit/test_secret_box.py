"""Sealing document passwords: ciphertext only, a key from settings or (embedded) the data dir, rotation."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from pagemill.errors import SecretsNotConfigured
from pagemill.secret_box import KEY_FILE_NAME, load_or_create_key_file, open_secret, seal_secret
from pagemill.settings import Settings

PASSWORD = "pässwörd-4711-unique"

# No PAGEMILL_* variable of the shell (a database URL, a key) may decide the mode under test.
pytestmark = pytest.mark.usefixtures("clean_env")


def embedded(data_dir: Path, **secrets: object) -> Settings:
    return Settings(data_dir=data_dir, secrets=secrets)


def distributed(data_dir: Path, **secrets: object) -> Settings:
    return Settings(
        data_dir=data_dir,
        database={"url": "postgresql+psycopg://pagemill@127.0.0.1/pagemill"},
        secrets=secrets,
    )


def test_a_sealed_password_opens_and_holds_no_plain_text(tmp_path: Path) -> None:
    settings = embedded(tmp_path)
    sealed = seal_secret(PASSWORD, settings)
    assert PASSWORD not in sealed and PASSWORD.encode() not in sealed.encode()
    assert seal_secret(PASSWORD, settings) != sealed  # a fresh IV each time: equal passwords do not show
    assert open_secret(sealed, settings) == PASSWORD
    assert open_secret(None, settings) is None


def test_embedded_mode_makes_one_private_key_file_and_keeps_it(tmp_path: Path) -> None:
    sealed = seal_secret(PASSWORD, embedded(tmp_path))
    key_file = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_bytes())  # a valid key
    # Another process (same data dir) opens it with the same key.
    assert open_secret(sealed, embedded(tmp_path)) == PASSWORD
    assert [path.name for path in tmp_path.iterdir()] == [KEY_FILE_NAME]  # no temporary file left


def test_processes_racing_to_make_the_key_end_up_with_one(tmp_path: Path) -> None:
    path = tmp_path / "nested" / KEY_FILE_NAME
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        keys.append(load_or_create_key_file(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert keys[0] == path.read_bytes().strip()


def test_a_configured_key_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    sealed = seal_secret(PASSWORD, embedded(tmp_path, key=key))
    assert Fernet(key.encode()).decrypt(sealed.encode()).decode() == PASSWORD
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_distributed_mode_without_a_key_refuses_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SecretsNotConfigured) as caught:
        seal_secret(PASSWORD, distributed(tmp_path))
    assert "secrets.key" in caught.value.message and "PAGEMILL_SECRETS__KEY" in caught.value.message
    assert caught.value.http_status == 422
    assert not (tmp_path / KEY_FILE_NAME).exists()  # a key made here would open nothing elsewhere


def test_distributed_mode_with_a_key_seals(tmp_path: Path) -> None:
    settings = distributed(tmp_path, key=Fernet.generate_key().decode())
    assert open_secret(seal_secret(PASSWORD, settings), settings) == PASSWORD


def test_a_rotated_key_still_opens_what_the_old_one_sealed(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_before = seal_secret(PASSWORD, distributed(tmp_path, key=old))
    rotated = distributed(tmp_path, key=new, previous_keys=[old])
    assert open_secret(sealed_before, rotated) == PASSWORD
    assert Fernet(new.encode()).decrypt(seal_secret(PASSWORD, rotated).encode()).decode() == PASSWORD


def test_a_worker_with_another_key_fails_with_a_specific_error(tmp_path: Path) -> None:
    sealed = seal_secret(PASSWORD, distributed(tmp_path, key=Fernet.generate_key().decode()))
    with pytest.raises(SecretsNotConfigured) as caught:
        open_secret(sealed, distributed(tmp_path, key=Fernet.generate_key().decode()))
    assert "secrets.previous_keys" in caught.value.message
    assert PASSWORD not in str(caught.value.to_dict())


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(secrets={"key": "not-a-fernet-key-but-secret"})
    assert "not-a-fernet-key-but-secret" not in str(caught.value)


def test_config_show_masks_the_keys() -> None:
    key = Fernet.generate_key().decode()
    shown = str(Settings(secrets={"key": key, "previous_keys": [key]}).public_dict())
    assert key not in shown
