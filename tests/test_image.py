"""MCUboot images (provisioning/image.py, `mfd image`) and what the emulated bootloader does with
bad ones: refused with a message that says what to do, and never booted, whatever the byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_stubs.mcuboot import BootError, sim
from firmware_stubs.mcuboot.bootloader import EINVAL, ENOENT
from firmware_stubs.mcuboot.layout import BOOT_MAGIC, T_MAGIC
from protocol.errors import MfdError
from provisioning import image, keys

MFD = [sys.executable, "-m", "mfdkit"]
IMGTOOL = shutil.which("imgtool") or str(Path(sys.executable).with_name("imgtool"))
KEY = keys.generate("ed25519")
OTHER = keys.generate("ed25519")
PAYLOAD = os.urandom(3000)


def signed(**kw: object) -> bytes:
    args: dict[str, object] = {"version": "1.2.3", "model": "reader-em4100",
                               "security_counter": 5, "key": KEY}
    args.update(kw)
    return image.build(PAYLOAD, **args)  # type: ignore[arg-type]


def mfd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MFD, *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("kind", keys.KINDS)
def test_a_built_image_verifies_and_says_what_it_is(kind: str) -> None:
    key = keys.generate(kind)
    data = image.build(PAYLOAD, version="2.0.1+7", model="panel-7in", security_counter=9,
                       key=key)
    info = image.verify(data, [keys.public_of(key)], model="panel-7in", min_counter=9)
    assert (info.version, info.model, info.security_counter) == ("2.0.1+7", "panel-7in", 9)
    assert info.key_id == keys.key_id(key) and info.signature == kind
    assert info.hash == hashlib.sha256(data[:info.size - info.tlv_size]).digest()
    assert info.payload_size == len(PAYLOAD) and info.size == len(data)
    assert data[32:32 + len(PAYLOAD)] == PAYLOAD


def test_the_model_is_a_protected_custom_tlv() -> None:
    p = image.parse(signed())
    assert image.TLV_MODEL == 0x4D46 and 0x00A0 <= image.TLV_MODEL <= 0xFFFE
    assert p.first(image.TLV_MODEL, protected=True) == b"reader-em4100"
    assert p.first(image.TLV_MODEL, protected=False) is None


@pytest.mark.parametrize(("make", "kw", "code", "advice"), [
    (lambda: signed(key=None), {}, image.UNSIGNED, "mfd image sign"),
    (lambda: signed(key=OTHER), {}, image.UNKNOWN_KEY, "trusted"),
    (lambda: signed(model="panel-7in"), {"model": "reader-em4100"}, image.WRONG_MODEL,
     "built for 'reader-em4100'"),
    (lambda: signed(security_counter=4), {"min_counter": 5}, image.DOWNGRADE,
     "security counter 5 or more"),
    (lambda: signed()[:-10], {}, image.TRUNCATED, "cut short"),
    (lambda: signed()[:40], {}, image.TRUNCATED, "cut short"),
    (lambda: b"\x7fELF" + bytes(100), {}, image.MALFORMED, "mfd image build"),
])
def test_each_bad_image_is_refused_saying_what_to_do(make, kw, code: str, advice: str) -> None:
    with pytest.raises(MfdError) as err:
        image.verify(make(), [keys.public_of(KEY)], **kw)
    assert err.value.code == code
    assert advice in err.value.message


def test_a_changed_payload_byte_is_tampering() -> None:
    data = bytearray(signed())
    data[100] ^= 0x01
    with pytest.raises(MfdError) as err:
        image.verify(bytes(data), [KEY])
    assert err.value.code == image.TAMPERED


def test_an_unprotected_model_or_counter_is_not_believed() -> None:
    data = signed(security_counter=1)
    # Append a SEC_CNT of 99 to the unprotected TLV area, fixing its length: not covered by
    # the hash, so the counter stays 1 and a device with counter 5 still refuses it.
    p = image.parse(data)
    start = p.hashed_end
    magic, total = struct.unpack_from("<HH", data, start)
    extra = struct.pack("<HHI", image.TLV_SEC_CNT, 4, 99)
    forged = data[:start] + struct.pack("<HH", magic, total + len(extra)) + \
        data[start + 4:] + extra
    assert image.inspect(forged).security_counter == 1
    with pytest.raises(MfdError) as err:
        image.verify(forged, [KEY], min_counter=5)
    assert err.value.code == image.DOWNGRADE


def test_sign_keeps_the_hash_and_adds_the_signature() -> None:
    unsigned = signed(key=None)
    out = image.sign(unsigned, KEY)
    assert image.inspect(out).hash == image.inspect(unsigned).hash
    assert image.verify(out, [KEY]).key_id == keys.key_id(KEY)
    resigned = image.sign(out, OTHER)
    assert image.verify(resigned, [OTHER]).key_id == keys.key_id(OTHER)


@settings(max_examples=25, derandomize=True, database=None, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_an_image_or_a_refusal(data: bytes) -> None:
    try:
        image.verify(data, [KEY])
    except MfdError as exc:
        assert exc.code in image.REFUSALS


# -- the emulated bootloader never boots a bad image ---------------------------------------

@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> sim.Rig:
    return sim.make_rig(tmp_path_factory.mktemp("img"), payload_old=5000, payload_new=6000,
                        slot_sectors=4, model="reader-em4100")


def _offer(rig: sim.Rig, bad: bytes) -> tuple[BootError | None, bytes]:
    """Upload ``bad``, ask to test it (the bootloader should refuse), then force the request
    into the trailer anyway, as a buggy or hostile tool could, and reset: return the refusal
    and the hash of what runs."""
    rig.restore()
    refusal = None
    with rig.open() as flash:
        bl = rig.reset(flash)
        sim.upload(bl, bad)
        try:
            bl.test(image.inspect(bad).hash)
        except (BootError, MfdError) as exc:
            refusal = exc if isinstance(exc, BootError) else None
        trailer = bl.layout.trailer(1)
        if flash.is_erased(trailer + T_MAGIC, len(BOOT_MAGIC)):
            flash.write(trailer + T_MAGIC, BOOT_MAGIC)
        bl = rig.reset(flash)
        bl = rig.reset(flash)
        run = bl.running()
        assert run is not None
        return refusal, run.hash


def _signed_for(rig: sim.Rig, **kw: object) -> bytes:
    args: dict[str, object] = {"version": "9.0.0", "model": rig.model, "security_counter": 3}
    args.update(kw)
    return image.build(os.urandom(4000), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "code"), [
    ({"key": None}, image.UNSIGNED),
    ({"key": OTHER}, image.UNKNOWN_KEY),
])
def test_the_bootloader_refuses_and_never_boots_unsigned_or_foreign(
        rig: sim.Rig, kw: dict[str, object], code: str) -> None:
    refusal, running = _offer(rig, _signed_for(rig, **kw))
    assert refusal is not None and refusal.rc == EINVAL and refusal.code == code
    assert running == rig.old_hash


def test_the_bootloader_never_boots_tampered_truncated_wrong_model_or_downgraded(
        rig: sim.Rig) -> None:
    # The rig's own key signs these; only the bootloader's judgement stands between them.
    new = bytearray(rig.new)
    new[200] ^= 0xFF
    wrong_model = _resign(rig, model="panel-7in", security_counter=3)
    downgrade = _resign(rig, model=rig.model, security_counter=0)
    for bad, code in ((bytes(new), image.TAMPERED), (wrong_model, image.WRONG_MODEL),
                      (downgrade, image.DOWNGRADE)):
        refusal, running = _offer(rig, bad)
        assert refusal is not None and refusal.code == code, code
        assert running == rig.old_hash
    # Truncated: the upload never completes, so there is nothing to test.
    rig.restore()
    with rig.open() as flash:
        bl = rig.reset(flash)
        bl.upload(0, rig.new[:1000], total=len(rig.new))
        with pytest.raises(BootError) as err:
            bl.test(rig.new_hash)
        assert err.value.rc == ENOENT


def _resign(rig: sim.Rig, **kw: object) -> bytes:
    # The rig keeps only public keys; sign with a private key the rig is then told to trust.
    return image.build(os.urandom(4000), version="9.0.0", key=_RIG_KEY, **kw)  # type: ignore[arg-type]


_RIG_KEY = keys.generate("ed25519")


@pytest.fixture(autouse=True)
def _trust_rig_key(rig: sim.Rig) -> None:
    if keys.public_pem(_RIG_KEY) not in rig.keys:
        rig.keys = [*rig.keys, keys.public_pem(_RIG_KEY)]


@settings(max_examples=40, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_flipping_any_byte_of_a_signed_image_means_it_is_never_activated(
        rig: sim.Rig, data: st.DataObject) -> None:
    good = rig.new
    at = data.draw(st.integers(0, len(good) - 1), label="byte")
    bits = data.draw(st.integers(1, 255), label="xor")
    bad = bytearray(good)
    bad[at] ^= bits
    with pytest.raises(MfdError):
        image.verify(bytes(bad), keys.load_trusted(rig.keys), model=rig.model)
    _refusal, running = _offer(rig, bytes(bad))
    assert running == rig.old_hash


# -- the CLI, and imgtool's own verify ------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("kind", keys.KINDS)
def test_imgtool_verify_accepts_what_mfd_image_builds_and_signs(tmp_path: Path,
                                                                kind: str) -> None:
    key = tmp_path / "fleet.pem"
    out = mfd("image", "keygen", str(key), "--type", kind)
    assert out.returncode == 0, out.stderr
    pub = tmp_path / "fleet.pub.pem"
    kid = keys.key_id(keys.load(pub))
    assert kid in out.stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE" not in out.stdout and key.read_text().splitlines()[1] not in out.stdout
    fw = tmp_path / "fw.bin"
    fw.write_bytes(os.urandom(20_000))
    built, unsigned, resigned = (tmp_path / n for n in ("a.img", "u.img", "s.img"))
    for args in (("build", str(fw), "-o", str(built), "--key", str(key)),
                 ("build", str(fw), "-o", str(unsigned)),
                 ("sign", str(unsigned), "--key", str(key), "-o", str(resigned))):
        out = mfd("image", *args, *(("--version", "1.4.0", "--model", "reader-em4100",
                                     "--security-counter", "4") if args[0] == "build" else ()))
        assert out.returncode == 0, out.stderr
    for made in (built, resigned):
        run = subprocess.run([IMGTOOL, "verify", "-k", str(pub), str(made)],
                             capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0 and "correctly validated" in run.stdout, run.stdout
        assert image.inspect(made.read_bytes()).hash.hex() in run.stdout
    inspect = json.loads(mfd("image", "inspect", str(resigned), "--json").stdout)
    assert inspect["key_id"] == kid and inspect["model"] == "reader-em4100"
    assert inspect["security_counter"] == 4 and inspect["signature"] == kind
    ok = mfd("image", "verify", str(built), "--key", str(pub), "--model", "reader-em4100",
             "--min-counter", "4", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True


@pytest.mark.integration
def test_mfd_image_verify_refusals_exit_1_and_say_what_to_do(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert mfd("image", "keygen", str(key)).returncode == 0
    again = mfd("image", "keygen", str(key))
    assert again.returncode == 1 and "already exists" in again.stderr
    fw = tmp_path / "fw.bin"
    fw.write_bytes(b"firmware" * 100)
    img = tmp_path / "i.img"
    assert mfd("image", "build", str(fw), "-o", str(img), "--version", "1.0.0", "--model",
               "m1", "--security-counter", "2", "--key", str(key)).returncode == 0
    pub = str(tmp_path / "k.pub.pem")
    wrong = mfd("image", "verify", str(img), "--key", pub, "--model", "m2")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("mfd image: error:") and "built for model 'm1'" in wrong.stderr
    low = mfd("image", "verify", str(img), "--key", pub, "--min-counter", "3", "--json")
    assert low.returncode == 1 and json.loads(low.stdout)["code"] == image.DOWNGRADE
    human = mfd("image", "inspect", str(img))
    assert human.returncode == 0 and "security counter: 2" in human.stdout


@settings(max_examples=30, derandomize=True, database=None, deadline=None)
@given(payload=st.binary(max_size=2000),
       version=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535),
                         st.integers(0, 1000)),
       counter=st.integers(0, 0xFFFFFFFF),
       model=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1,
                     max_size=20).filter(str.isprintable))
def test_what_build_writes_inspect_reads_back(payload: bytes, version: tuple[int, ...],
                                              counter: int, model: str) -> None:
    text = f"{version[0]}.{version[1]}.{version[2]}+{version[3]}"
    data = image.build(payload, version=text, model=model, security_counter=counter, key=KEY)
    info = image.verify(data, [KEY], model=model, min_counter=counter)
    shown = text if version[3] else text.split("+")[0]
    assert (info.version, info.security_counter, info.model) == (shown, counter, model)
    assert data[info.header_size:info.header_size + info.payload_size] == payload
