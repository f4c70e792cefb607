"""The ledger signing key: created once (0600), reused, refused when it belongs to another log."""
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from forumlib.tlog import open_note, parse_verifier_key, sign_note
from services.minutes.keys import KeyFileError, load_or_create_signer, signer
from shared.settings import Settings

ORIGIN = "forum.test/registre"


def test_created_at_first_use_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.key"
    first = load_or_create_signer(path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith(f"PRIVATE+KEY+{ORIGIN}+")
    again = load_or_create_signer(path, ORIGIN)
    assert again.verifier.encode() == first.verifier.encode()
    verifier = parse_verifier_key(first.verifier.encode())
    assert open_note(sign_note("hello\n", again), [verifier]).text == "hello\n"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_signer(path, ORIGIN).verifier.encode(), range(16)))
    assert len(keys) == 1


def test_key_of_another_origin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    load_or_create_signer(path, ORIGIN)
    with pytest.raises(KeyFileError, match="origin"):
        load_or_create_signer(path, "another.example/log")


def test_garbage_key_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    path.write_text("PRIVATE+KEY+not-a-key+00000000+c2VjcmV0\n")
    with pytest.raises(KeyFileError) as exc:
        load_or_create_signer(path, ORIGIN)
    assert "c2VjcmV0" not in str(exc.value)


def test_settings_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORUM_LEDGER_KEY_FILE", raising=False)
    monkeypatch.delenv("FORUM_LEDGER_ORIGIN", raising=False)
    s = Settings(data_dir=tmp_path)
    assert s.ledger_key_path == tmp_path / "ledger.key" and s.ledger_origin == "forum-ouvert.local/registre"
    monkeypatch.setenv("FORUM_LEDGER_KEY_FILE", str(tmp_path / "k"))
    monkeypatch.setenv("FORUM_LEDGER_ORIGIN", ORIGIN)
    s = Settings()
    assert s.ledger_key_path == tmp_path / "k" and s.ledger_origin == ORIGIN


def test_the_service_reads_the_key_of_its_settings_once(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, ledger_origin=ORIGIN)
    first = signer(s)
    assert s.ledger_key_path.exists() and first.name == ORIGIN
    assert signer(Settings(data_dir=tmp_path, ledger_origin=ORIGIN)) is first
    with pytest.raises(KeyFileError, match="origin"):  # same file, another log: refused, never cached
        signer(Settings(data_dir=tmp_path, ledger_origin="another.example/log"))
