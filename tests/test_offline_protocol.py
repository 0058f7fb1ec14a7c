"""protocol/offline.py: the offline bundle's codec and cryptography, and its three messages.

Property tests in the manner of every codec here: what one end encodes the other decodes to the
same value; arbitrary bytes give the module's own error and nothing else; every tampering is
caught (a bundle's signature, a sealed chunk's tag, a wrapped key under the wrong credential).
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import messages as m
from protocol import offline as o
from protocol.errors import ProtocolError

DEVICE = "copier-1"
NOW = 1_800_000_000.0
# One key pair for the module: Ed25519 generation is cheap, but the same key keeps examples
# comparable.
KEY = o.new_signing_key()
PUBLIC = o.parse_public_key(o.public_key_text(KEY))
# A cheap scrypt for the property tests (the cost is a parameter of the bundle; the device uses
# whatever the bundle says).
FAST_N = 2

ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.:", min_size=1, max_size=24)
names = st.text(max_size=40)
hexes = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def bundles(draw: st.DrawFn) -> o.Bundle:
    user_ids = draw(st.lists(ids, unique=True, max_size=4))
    users = []
    for uid in user_ids:
        cards = tuple(draw(st.lists(hexes, max_size=3, unique=True)))
        code = draw(st.none() | hexes)
        wraps = {e: draw(st.binary(min_size=60, max_size=60)) for e in cards}
        users.append(o.OfflineUser(uid, draw(names), draw(st.sampled_from(["", "en", "de"])),
                                   cards, code, wraps))
    jobs = []
    if user_ids:
        for jid in draw(st.lists(ids, unique=True, max_size=4)):
            jobs.append(o.OfflineJob(
                jid, draw(st.sampled_from(user_ids)), draw(names), draw(st.integers(0, 500)),
                draw(st.booleans()), draw(st.booleans()), draw(st.integers(1, 999)),
                draw(st.integers(0, 2**31)), draw(hexes),
                draw(st.floats(0, 2**39, allow_nan=False))))
    issued = draw(st.floats(NOW - 10_000, NOW, allow_nan=False))
    return o.Bundle(device_id=draw(st.just(DEVICE) | ids), org_id=draw(ids),
                    seq=draw(st.integers(1, 2**50)), issued_at=issued,
                    expires_at=issued + draw(st.floats(1, 10**6, allow_nan=False)),
                    salt=draw(st.binary(min_size=1, max_size=32)), n=draw(st.sampled_from([2, 4])),
                    list_key=draw(st.binary(min_size=32, max_size=32)), users=tuple(users),
                    jobs=tuple(jobs))


@given(bundles())
def test_a_bundle_survives_encoding(bundle: o.Bundle) -> None:
    body = o.encode_bundle(bundle)
    assert o.decode_bundle(body) == bundle
    # Canonical: encoding the decoded bundle gives the very bytes that were signed.
    assert o.encode_bundle(o.decode_bundle(body)) == body


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_a_bundle_error_only(data: bytes) -> None:
    try:
        o.decode_bundle(data)
    except o.OfflineError as exc:
        assert exc.code == "bad_bundle"


@given(bundles(), st.data())
@settings(max_examples=60)
def test_any_mangled_field_is_refused_by_name(bundle: o.Bundle, data: st.DataObject) -> None:
    obj = json.loads(o.encode_bundle(bundle))
    key = data.draw(st.sampled_from(sorted(obj)))
    # Finite numbers only: NaN and infinities are not JSON at all ("not JSON", the arbitrary
    # bytes test's case), so they name no field.
    obj[key] = data.draw(st.none() | st.text(max_size=5)
                         | st.floats(allow_nan=False, allow_infinity=False)
                         | st.lists(st.none()))
    try:
        o.decode_bundle(json.dumps(obj).encode())
    except o.OfflineError as exc:
        assert exc.code == "bad_bundle"
        assert key in exc.message or key in ("users", "jobs", "v")


def _signed(bundle: o.Bundle) -> tuple[bytes, bytes]:
    body = o.encode_bundle(bundle)
    return body, o.sign(KEY, body)


def _bundle(**changes: object) -> o.Bundle:
    base = dict(device_id=DEVICE, org_id="org", seq=10, issued_at=NOW - 60,
                expires_at=NOW + 3600, salt=b"salt", n=FAST_N, list_key=b"k" * 32,
                users=(), jobs=())
    base.update(changes)
    return o.Bundle(**base)  # type: ignore[arg-type]


@given(st.data())
@settings(max_examples=80)
def test_a_flipped_bit_anywhere_breaks_the_signature(data: st.DataObject) -> None:
    body, sig = _signed(_bundle())
    which = data.draw(st.sampled_from(["body", "sig"]))
    target = bytearray(body if which == "body" else sig)
    i = data.draw(st.integers(0, len(target) - 1))
    target[i] ^= 1 << data.draw(st.integers(0, 7))
    body, sig = (bytes(target), sig) if which == "body" else (body, bytes(target))
    with pytest.raises(o.OfflineError) as caught:
        o.open_bundle(PUBLIC, body, sig, device_id=DEVICE, now=NOW)
    assert caught.value.code == "bad_signature"


def test_another_cloud_key_is_refused() -> None:
    body, sig = _signed(_bundle())
    other = o.parse_public_key(o.public_key_text(o.new_signing_key()))
    with pytest.raises(o.OfflineError) as caught:
        o.open_bundle(other, body, sig, device_id=DEVICE, now=NOW)
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize(("bundle", "kwargs", "code"), [
    (_bundle(device_id="copier-2"), {}, "wrong_device"),
    (_bundle(seq=10), {"last_seq": 10}, "replayed"),
    (_bundle(seq=9), {"last_seq": 10}, "replayed"),
    (_bundle(expires_at=NOW - 1), {}, "expired"),
    # The clock set back: the device saw a later time, so an expired bundle is not revived...
    (_bundle(expires_at=NOW + 100), {"now": NOW, "high_water": NOW + 200}, "expired"),
    # ...and a clock far behind what it has seen is not trusted at all.
    (_bundle(), {"now": NOW - 3 * o.SKEW_S, "high_water": NOW}, "clock_rollback"),
    (_bundle(issued_at=NOW + 2 * o.SKEW_S, expires_at=NOW + 9000), {}, "clock_rollback"),
])
def test_bundles_a_device_must_not_use(bundle: o.Bundle, kwargs: dict[str, float],
                                       code: str) -> None:
    body, sig = _signed(bundle)
    args: dict[str, float] = {"now": NOW}
    args.update(kwargs)
    with pytest.raises(o.OfflineError) as caught:
        o.open_bundle(PUBLIC, body, sig, device_id=DEVICE, **args)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_a_good_bundle_finds_its_users_by_what_they_present() -> None:
    salt, list_key = os.urandom(16), os.urandom(32)
    card = o.verifier(salt, "card", "00012345", FAST_N)
    code = o.verifier(salt, "code", "4711ab", FAST_N)
    secret_key = o.user_key(b"org secret", DEVICE, "ann")
    wraps = {o.lookup(list_key, v): o.wrap(v, secret_key, os.urandom(12)) for v in (card, code)}
    ann = o.OfflineUser("ann", "Ann", "de", (o.lookup(list_key, card),),
                        o.lookup(list_key, code), wraps)
    body, sig = _signed(_bundle(salt=salt, list_key=list_key, users=(ann,)))
    bundle = o.open_bundle(PUBLIC, body, sig, device_id=DEVICE, now=NOW, last_seq=3)
    for kind, value in (("card", "00012345"), ("code", "4711ab")):
        presented = o.verifier(bundle.salt, kind, value, bundle.n)
        found = bundle.find(kind, presented)
        assert found is not None and found[0].user_id == "ann"
        assert o.unwrap(presented, found[0].wraps[found[1]]) == secret_key
    # A card number typed as a code, or a near miss, finds nobody.
    assert bundle.find("code", o.verifier(salt, "code", "00012345", FAST_N)) is None
    assert bundle.find("card", o.verifier(salt, "card", "00012346", FAST_N)) is None
    # Nothing of the credentials is in the body in clear.
    assert b"00012345" not in body and b"4711ab" not in body


def test_a_wrapped_key_opens_only_with_its_credential() -> None:
    right, wrong = os.urandom(32), os.urandom(32)
    sealed = o.wrap(right, b"u" * 32, os.urandom(12))
    assert o.unwrap(right, sealed) == b"u" * 32
    with pytest.raises(o.OfflineError):
        o.unwrap(wrong, sealed)
    with pytest.raises(o.OfflineError):
        o.unwrap(right, sealed[:-1])


@given(st.binary(max_size=3 * 1024), st.data())
@settings(max_examples=40)
def test_sealed_chunks_open_only_where_they_were_sealed(doc: bytes, data: st.DataObject) -> None:
    # A small grid through the real function: the document is cut at CHUNK_BYTES, so examples
    # this size hold one chunk; the multi-chunk case is the test below.
    key = os.urandom(32)
    digest = hashlib.sha256(doc).hexdigest()
    sealed = o.seal_chunk(key, "job-1", 0, len(doc), doc, digest=digest)
    assert len(sealed) == len(doc) + o.TAG_BYTES
    assert o.open_chunk(key, "job-1", 0, len(doc), sealed, digest=digest) == doc
    attack = data.draw(st.sampled_from(["key", "job", "total", "flip", "cut", "document"]))
    with pytest.raises(o.OfflineError) as caught:
        if attack == "key":
            o.open_chunk(os.urandom(32), "job-1", 0, len(doc), sealed, digest=digest)
        elif attack == "job":
            o.open_chunk(key, "job-2", 0, len(doc), sealed, digest=digest)
        elif attack == "total":
            o.open_chunk(key, "job-1", 0, len(doc) + 1, sealed, digest=digest)
        elif attack == "flip":
            i = data.draw(st.integers(0, len(sealed) - 1))
            o.open_chunk(key, "job-1", 0, len(doc),
                         sealed[:i] + bytes([sealed[i] ^ 0x80]) + sealed[i + 1:],
                         digest=digest)
        elif attack == "document":
            # The same job id and size but another document (a replaced one): other nonces.
            o.open_chunk(key, "job-1", 0, len(doc), sealed, digest="0" * 64)
        else:
            o.open_chunk(key, "job-1", 0, len(doc), sealed[:-1], digest=digest)
    assert caught.value.code == "bad_chunk"


def test_a_document_of_several_chunks_and_the_grid() -> None:
    key = os.urandom(32)
    doc = os.urandom(2 * o.CHUNK_BYTES + 1000)
    digest = hashlib.sha256(doc).hexdigest()
    sealed = {off: o.seal_chunk(key, "j", off, len(doc), doc[off:off + o.CHUNK_BYTES],
                                digest=digest)
              for off in range(0, len(doc), o.CHUNK_BYTES)}
    assert b"".join(o.open_chunk(key, "j", off, len(doc), s, digest=digest) for off, s in
                    sorted(sealed.items())) == doc
    # A chunk moved to another offset does not open there.
    with pytest.raises(o.OfflineError):
        o.open_chunk(key, "j", o.CHUNK_BYTES, len(doc), sealed[0], digest=digest)
    # Off the grid, past the end: refused before any cryptography.
    for offset in (1, o.CHUNK_BYTES - 1, len(doc), 3 * o.CHUNK_BYTES, -o.CHUNK_BYTES):
        with pytest.raises(o.OfflineError) as caught:
            o.chunk_span(offset, len(doc))
        assert caught.value.code == "bad_chunk"
    assert o.chunk_span(2 * o.CHUNK_BYTES, len(doc)) == 1000
    assert o.CHUNK_BYTES == m.DOCUMENT_CHUNK_BYTES


@pytest.mark.parametrize("text", ["", "ed25519:", "ed25519:!!!", "rsa:AAAA",
                                  "ed25519:" + "A" * 40])
def test_bad_public_keys_are_named(text: str) -> None:
    with pytest.raises(o.OfflineError) as caught:
        o.parse_public_key(text)
    assert caught.value.code == "bad_key"


def test_a_public_key_round_trips_and_names_itself() -> None:
    text = o.public_key_text(KEY)
    assert o.public_key_text(o.parse_public_key(text)) == text
    assert len(o.key_id(text)) == 16
    raw = o.private_key_bytes(KEY)
    assert o.public_key_text(o.load_private_key(raw)) == text


# ------------------------------------------------------------------ the messages

events = st.builds(m.OfflineEvent, kind=st.sampled_from(["login", "refused", "printed",
                                                          "failed"]),
                   at=st.floats(0, 2**40, allow_nan=False), user_id=st.text(max_size=64),
                   job_id=st.text(max_size=64), detail=st.text(max_size=200),
                   release_id=st.text(max_size=64))


def _legal(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@given(st.lists(events, min_size=1, max_size=20), st.integers(0, 2**40))
def test_an_offline_report_round_trips(evs: list[m.OfflineEvent], seq: int) -> None:
    report = m.OfflineReport(request_id="r" * 16, seq=seq, events=tuple(evs))
    data = m.encode(report)
    legal = all(_legal(t) for e in evs for t in (e.user_id, e.job_id, e.detail, e.release_id))
    if legal:
        assert m.decode_request(data) == report
    else:
        # Text no peer can hold (a NUL, a lone surrogate) is refused by the receiver, by name.
        with pytest.raises(ProtocolError) as caught:
            m.decode_request(data)
        assert caught.value.field is not None and caught.value.field.startswith("events[")


@given(st.binary(max_size=500))
def test_arbitrary_offline_requests_give_the_protocol_error_only(junk: bytes) -> None:
    for kind in ("offline.sync", "offline.document", "offline.report"):
        data = b'{"v":1,"type":"' + kind.encode() + b'",' + junk
        try:
            m.decode_request(data)
        except ProtocolError:
            pass


def test_the_bundle_answer_carries_exact_bytes() -> None:
    body, sig = _signed(_bundle())
    answer = m.encode_result(m.OfflineBundle(body=body, signature=sig, key_id="k"),
                             "offline.sync")
    got = m.decode_response(answer, "offline.sync")
    assert isinstance(got, m.OfflineBundle)
    assert o.open_bundle(PUBLIC, got.body, got.signature, device_id=DEVICE, now=NOW).seq == 10
