"""The emulated reader's SMP server, sans-I/O (firmware_stubs/smp/server.py), on the real
emulated MCUboot: what a client reads back, decoded with the third-party smp models where they
exist, so the answers are checked against the protocol and not only against our own codec."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from smp import error as smperr
from smp import image_management as smpimg
from smp import os_management as smpos

from firmware_stubs.mcuboot import Bootloader, factory_flash
from firmware_stubs.smp.packets import (
    AppInfoRead,
    Echo,
    Header,
    ImageStateRead,
    ImageStateWrite,
    ImageUpload,
    MgmtErr,
    Op,
    ParamsRead,
    Reset,
    decode_packet,
    encode_packet,
    encode_request,
)
from firmware_stubs.smp.server import DeviceIdentity, SmpServer
from provisioning import image as img
from provisioning import keys as keymod

MODEL = "reader-em4100"


@pytest.fixture(scope="module")
def images() -> tuple[object, bytes, bytes]:
    key = keymod.generate()
    rng = random.Random(7)
    v1 = img.build(rng.randbytes(5000), version="1.0.0", model=MODEL, security_counter=1, key=key)
    v2 = img.build(rng.randbytes(7000), version="1.1.0", model=MODEL, security_counter=1, key=key)
    return key, v1, v2


def server_for(tmp_path: Path, images: tuple[object, bytes, bytes], **kw: object) -> SmpServer:
    key, v1, _ = images
    der = keymod.public_der(key)
    boot = Bootloader(factory_flash(tmp_path / "flash.bin", v1, slot_sectors=8), model=MODEL,
                      trusted_keys=[der])
    boot.boot()
    return SmpServer(boot, DeviceIdentity(MODEL, (keymod.key_id(key),), (der,)), **kw)  # type: ignore[arg-type]


def ask(server: SmpServer, request: object, seq: int = 1) -> bytes:
    reply = server.handle(encode_request(request, seq))  # type: ignore[arg-type]
    assert reply.packet is not None
    return reply.packet


def test_echo_params_and_app_info(tmp_path, images) -> None:
    s = server_for(tmp_path, images, buf_size=1024)
    assert smpos.EchoWriteResponse.loads(ask(s, Echo("hello"), 9)).r == "hello"
    params = smpos.MCUMgrParametersReadResponse.loads(ask(s, ParamsRead()))
    assert (params.buf_size, params.buf_count) == (1024, 4)
    info = smpos.OSApplicationInfoReadResponse.loads(ask(s, AppInfoRead("a"))).output
    assert f"model={MODEL}" in info and "version=1.0.0" in info
    assert f"keys={keymod.key_id(images[0])}" in info


def test_without_params_the_command_is_not_supported(tmp_path, images) -> None:
    s = server_for(tmp_path, images, params=False)
    err = smpos.OSManagementErrorV1.loads(ask(s, ParamsRead()))
    assert err.rc == smperr.MGMT_ERR.ENOTSUP


def test_a_reset_is_answered_then_asked_for(tmp_path, images) -> None:
    s = server_for(tmp_path, images)
    reply = s.handle(encode_request(Reset(), 4))
    assert reply.reset and reply.packet is not None
    assert decode_packet(reply.packet).header.sequence == 4


def test_upload_resume_and_a_repeated_chunk_is_not_written_again(tmp_path, images) -> None:
    _, _, v2 = images
    s = server_for(tmp_path, images)
    sha = hashlib.sha256(v2).digest()
    first = smpimg.ImageUploadWriteResponse.loads(
        ask(s, ImageUpload(0, v2[:1000], len(v2), sha)))
    assert first.off == 1000
    again = smpimg.ImageUploadWriteResponse.loads(ask(s, ImageUpload(0, b"", len(v2), sha)))
    assert again.off == 1000  # the same upload, named again: where it stands
    ahead = smpimg.ImageUploadWriteResponse.loads(ask(s, ImageUpload(3000, v2[3000:4000])))
    assert ahead.off == 1000  # a chunk past the expected offset is not taken
    stale = smpimg.ImageUploadWriteResponse.loads(ask(s, ImageUpload(500, v2[500:1500])))
    assert stale.off == 1000  # nor one before it
    rest = smpimg.ImageUploadWriteResponse.loads(ask(s, ImageUpload(1000, v2[1000:])))
    assert (rest.off, rest.match) == (len(v2), True)
    states = smpimg.ImageStatesReadResponse.loads(ask(s, ImageStateRead())).images
    assert [(i.slot, i.version) for i in states] == [(0, "1.0.0"), (1, "1.1.0")]
    assert states[1].hash == img.inspect(v2).hash


def test_a_wrong_sha_is_refused_with_a_reason(tmp_path, images) -> None:
    _, _, v2 = images
    s = server_for(tmp_path, images)
    bad = ask(s, ImageUpload(0, v2, len(v2), bytes(32)))
    err = smpimg.ImageManagementErrorV1.loads(bad)
    assert err.rc == smperr.MGMT_ERR.ECORRUPT and err.rsn and "upload it again" in err.rsn


def test_testing_an_unknown_hash_is_refused_and_nothing_is_pending(tmp_path, images) -> None:
    s = server_for(tmp_path, images)
    err = smpimg.ImageManagementErrorV1.loads(ask(s, ImageStateWrite(bytes(32), False)))
    assert err.rc == smperr.MGMT_ERR.ENOENT
    states = smpimg.ImageStatesReadResponse.loads(ask(s, ImageStateRead())).images
    assert not any(i.pending for i in states)


def test_a_request_of_an_unknown_group_is_not_supported(tmp_path, images) -> None:
    s = server_for(tmp_path, images)
    reply = s.handle(encode_packet(Header(Op.READ, 42, 0, 3), {}))
    assert reply.packet is not None
    assert decode_packet(reply.packet).body["rc"] == MgmtErr.ENOTSUP


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, images) -> SmpServer:
    return server_for(tmp_path_factory.mktemp("shared"), images)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=120))
def test_arbitrary_packets_get_a_decodable_answer_or_none(shared: SmpServer, data: bytes) -> None:
    primary = shared.bootloader.slots()[0].hash
    reply = shared.handle(data)  # raises nothing: a device cannot crash on line garbage
    if reply.packet is not None:
        answer = decode_packet(reply.packet)
        assert answer.header.op in (Op.READ_RSP, Op.WRITE_RSP)
        assert answer.header.sequence == data[6]
    # The running image changes only at a boot, which the server only asks for.
    assert shared.bootloader.slots()[0].hash == primary
