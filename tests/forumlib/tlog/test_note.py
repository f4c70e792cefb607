"""C2SP signed notes, checked against golang.org/x/mod/sumdb/note's vectors."""

import base64

import pytest

from forumlib.tlog.note import (
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    NoteError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    generate_key,
    is_valid_key_name,
    key_id,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from tests.forumlib.tlog import vectors as v

PETER = parse_verifier_key(v.PETER_VERIFIER_KEY)
ENOCH = parse_verifier_key(v.ENOCH_VERIFIER_KEY)


def _manglings(key: str):
    """Every proper substring and every one-character increment (as note_test.go does)."""
    for i in range(len(key) + 1):
        for j in range(i + 1, len(key) + 1):
            if (i, j) != (0, len(key)):
                yield key[i:j]
    for i in range(len(key)):
        yield key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :]


# --- keys -----------------------------------------------------------------------


def test_go_verifier_key_parses() -> None:
    assert PETER.name == "PeterNeumann"
    assert PETER.key_id == 0xC74F20A3
    assert PETER.encode() == v.PETER_VERIFIER_KEY
    assert ENOCH.key_id == 0xAF0CFE78


def test_go_signer_key_parses_and_matches_verifier() -> None:
    signer = parse_signer_key(v.PETER_SIGNER_KEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.verifier == PETER
    assert signer.encode() == v.PETER_SIGNER_KEY
    assert "seed" not in repr(signer) and v.PETER_SIGNER_KEY[-10:] not in repr(signer)


def test_mangled_verifier_keys_are_rejected() -> None:
    accepted = []
    for k in _manglings(v.PETER_VERIFIER_KEY):
        try:
            parse_verifier_key(k)
        except KeyFormatError:
            continue
        accepted.append(k)
    assert not accepted


def test_mangled_signer_keys_are_rejected() -> None:
    accepted = []
    for k in _manglings(v.PETER_SIGNER_KEY):
        try:
            parse_signer_key(k)
        except KeyFormatError:
            continue
        accepted.append(k)
    assert not accepted


def test_go_bad_keys() -> None:
    # Wrong key length (with adjusted key hash) and unknown algorithm (with adjusted hash), from note_test.go.
    with pytest.raises(KeyFormatError):
        parse_verifier_key("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(KeyFormatError, match="algorithm"):
        parse_verifier_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(KeyFormatError, match="does not match"):
        parse_verifier_key("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(KeyFormatError, match="PRIVATE"):
        parse_signer_key(v.PETER_VERIFIER_KEY)


def test_key_id_definition() -> None:
    import hashlib

    pub = PETER.public_key
    digest = hashlib.sha256(b"PeterNeumann\n\x01" + pub).digest()
    assert key_id("PeterNeumann", pub) == int.from_bytes(digest[:4], "big") == 0xC74F20A3


def test_generate_key_round_trip() -> None:
    skey, vkey = generate_key("forum.example/record")
    signer, verifier = parse_signer_key(skey), parse_verifier_key(vkey)
    assert signer.verifier == verifier
    assert skey.startswith("PRIVATE+KEY+forum.example/record+")
    assert Verifier("forum.example/record", verifier.public_key).encode() == vkey
    with pytest.raises(KeyFormatError):
        Verifier("forum.example/record", verifier.public_key[:-1])


@pytest.mark.parametrize(
    "name", ["", "a+b", "a b", "a\tb", "a\nb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\u2028b", "a\x01b", "a\ud800"]
)
def test_invalid_key_names(name: str) -> None:
    assert not is_valid_key_name(name)
    with pytest.raises(KeyFormatError):
        generate_key(name)


def test_valid_key_names() -> None:
    for name in ("PeterNeumann", "forum.example/record", "sum.golang.org", "caf\u00e9/\u2014"):
        assert is_valid_key_name(name)


# --- signing ---------------------------------------------------------------------


def test_go_sign_vector_exactly() -> None:
    signer = parse_signer_key(v.PETER_SIGNER_KEY)
    assert sign_note(v.NOTE_TEXT, signer) == v.PETER_SIGNED_NOTE


def test_sign_rejects_bad_text_and_signers() -> None:
    signer = parse_signer_key(v.PETER_SIGNER_KEY)
    with pytest.raises(MalformedNoteError, match="end with a newline"):
        sign_note("abc", signer)
    with pytest.raises(MalformedNoteError, match="control character"):
        sign_note("a\x01b\n", signer)
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note("abc\n")
    with pytest.raises(NoteError, match="twice"):
        sign_note("abc\n", signer, signer)


# --- opening ---------------------------------------------------------------------


def test_go_open_one_known_one_unknown() -> None:
    note = open_note(v.NOTE_TEXT + "\n" + v.PETER_SIG + v.ENOCH_SIG, [PETER])
    assert note.text == v.NOTE_TEXT
    assert [(s.name, s.key_id) for s in note.signatures] == [("PeterNeumann", 0xC74F20A3)]
    assert [(s.name, s.key_id) for s in note.unverified] == [("EnochRoot", 0xAF0CFE78)]
    assert note.signatures[0].line() == v.PETER_SIG


def test_go_open_both_verified() -> None:
    note = open_note((v.NOTE_TEXT + "\n" + v.PETER_SIG + v.ENOCH_SIG).encode(), [PETER, ENOCH])
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    assert note.unverified == ()


def test_go_open_no_known_key() -> None:
    with pytest.raises(UnverifiedNoteError, match="no signature from a known key") as info:
        open_note(v.NOTE_TEXT + "\n" + v.PETER_SIG + v.ENOCH_SIG, [])
    assert info.value.note.text == v.NOTE_TEXT
    assert [s.name for s in info.value.note.unverified] == ["PeterNeumann", "EnochRoot"]


def test_go_open_too_many_signatures() -> None:
    with pytest.raises(MalformedNoteError, match="limit"):
        open_note(v.NOTE_TEXT + "\n" + v.PETER_SIG * 101, [PETER])
    open_note(v.NOTE_TEXT + "\n" + v.PETER_SIG * 100, [PETER])


def test_go_open_invalid_signature() -> None:
    bad = v.PETER_SIG[:60] + "ABCD" + v.PETER_SIG[60:]
    with pytest.raises(InvalidSignatureError, match=r"invalid signature for key PeterNeumann\+c74f20a3"):
        open_note(v.NOTE_TEXT + "\n" + bad, [PETER])


def test_go_open_duplicates() -> None:
    enoch_abcd = v.ENOCH_SIG[:60] + "ABCD" + v.ENOCH_SIG[60:]
    msg = v.NOTE_TEXT + "\n" + v.PETER_SIG + v.PETER_SIG + v.ENOCH_SIG + v.ENOCH_SIG + enoch_abcd
    note = open_note(msg, [PETER])
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    assert [s.line() for s in note.unverified] == [v.ENOCH_SIG, enoch_abcd]
    # Duplicate verifiers for the same key are harmless.
    open_note(v.PETER_SIGNED_NOTE, [ENOCH, PETER, ENOCH])


@pytest.mark.parametrize(
    "msg",
    [
        v.NOTE_TEXT,
        v.NOTE_TEXT + "\n",
        v.NOTE_TEXT + "\n" + v.PETER_SIG[:-1],
        "\x01" + v.NOTE_TEXT + "\n" + v.PETER_SIG,
        b"\xff" + (v.NOTE_TEXT + "\n" + v.PETER_SIG).encode(),
        v.NOTE_TEXT + "\n" + v.PETER_SIG.replace("PeterNeumann", "Bad Name").rstrip("\n"),
        v.NOTE_TEXT + "\n" + v.PETER_SIG.replace("PeterNeumann", "Bad Name"),
        v.NOTE_TEXT + "\n" + v.PETER_SIG + "Unexpected line.\n",
        v.NOTE_TEXT + "\n" + v.PETER_SIG.replace("\u2014 ", "- "),
        v.NOTE_TEXT + "\n" + v.PETER_SIG.replace("AM=", "AM"),  # missing padding
        v.NOTE_TEXT + "\n" + v.PETER_SIG.replace("AM=", "AN="),  # non-canonical trailing bits
        v.NOTE_TEXT + "\n" + v.PETER_SIG.replace("x08go", "x08g!"),
        v.NOTE_TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",  # too short for key ID + signature
        v.NOTE_TEXT + "\n" + "\u2014 PeterNeumann\n",
    ],
)
def test_go_malformed_notes(msg) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(msg, [PETER])


def test_misnamed_signature_is_unknown_key() -> None:
    misnamed = v.PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    with pytest.raises(UnverifiedNoteError):
        open_note(v.NOTE_TEXT + "\n" + misnamed, [PETER])
    wrong_id = v.PETER_SIG.replace("x08g", "xxxx")
    with pytest.raises(UnverifiedNoteError):
        open_note(v.NOTE_TEXT + "\n" + wrong_id, [PETER])


def test_c2sp_example_note_with_blank_line_in_text() -> None:
    with pytest.raises(UnverifiedNoteError) as info:
        open_note(v.C2SP_NOTE, [PETER])
    assert info.value.note.text == v.C2SP_NOTE_TEXT
    assert info.value.note.unverified[0].name == "quasimodo.example/salvatore"


# --- round trips and tampering -------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> tuple[Signer, Verifier, Signer]:
    s1, _ = generate_key("forum.example/record")
    other, _ = generate_key("forum.example/record")
    signer = parse_signer_key(s1)
    return signer, signer.verifier, parse_signer_key(other)


def test_round_trip(keys) -> None:
    signer, verifier, _ = keys
    text = "Procès-verbal n°1\n\nDécision : adoptée.\n"
    note = open_note(sign_note(text, signer), [verifier])
    assert note.text == text
    assert note.signatures[0].key_id == signer.key_id


def test_changed_text_is_rejected(keys) -> None:
    signer, verifier, _ = keys
    signed = sign_note("decision: adopted\n", signer)
    with pytest.raises(InvalidSignatureError):
        open_note(signed.replace("adopted", "rejected"), [verifier])


def test_changed_signature_is_rejected(keys) -> None:
    signer, verifier, _ = keys
    signed = sign_note("decision: adopted\n", signer)
    b64 = signed.split("\n\n")[1].rstrip("\n").split(" ")[2]
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 1  # inside the Ed25519 signature, after the 4-byte key ID
    forged = signed.replace(b64, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(InvalidSignatureError):
        open_note(forged, [verifier])


def test_other_key_is_rejected(keys) -> None:
    signer, verifier, other = keys
    assert other.name == signer.name and other.key_id != signer.key_id
    with pytest.raises(UnverifiedNoteError):
        open_note(sign_note("decision: adopted\n", other), [verifier])


def test_signature_from_known_key_must_verify_even_beside_a_good_one(keys) -> None:
    signer, verifier, other = keys
    good = sign_note("x\n", signer)
    bad_line = sign_note("y\n", other).split("\n\n")[1]  # a signature over other text
    assert open_note(good + bad_line, [verifier]).unverified
    with pytest.raises(InvalidSignatureError):
        open_note(good + bad_line, [verifier, other.verifier])


def test_verifier_list_must_hold_verifiers() -> None:
    with pytest.raises(NoteError, match="parse_verifier_key"):
        open_note(v.PETER_SIGNED_NOTE, [v.PETER_VERIFIER_KEY])  # type: ignore[list-item]
