"""Contract v1 codec: round trips, validation errors that name the field, and garbage in."""

from __future__ import annotations

import dataclasses
import json
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import messages, topics
from protocol import messages as p
from protocol.errors import ErrorCode, ProtocolError, RemoteError

ids = st.from_regex(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
#: What a string field may hold: any Unicode text but NUL (surrogates are not text).
text = partial(st.text, alphabet=st.characters(codec="utf-8", blacklist_characters="\x00"))
secret = text(min_size=1, max_size=128)
nonneg = st.integers(min_value=0, max_value=2**40)
#: A language tag as a cloud sends one ("" is no preference).
languages = st.just("") | st.from_regex(r"\A[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}\Z")

job_summary = st.builds(
    p.JobSummary, job_id=ids, name=text(max_size=256), pages=nonneg, color=st.booleans(),
    duplex=st.booleans(), copies=st.integers(1, 999), size=nonneg,
    submitted_at=st.floats(0, 4e9, allow_nan=False), source=text(max_size=128))
released_job = st.builds(
    p.ReleasedJob, job_id=ids, name=text(max_size=256), size=nonneg,
    sha256=st.from_regex(r"\A[0-9a-f]{64}\Z"), pages=nonneg, copies=st.integers(1, 999),
    color=st.booleans(), duplex=st.booleans())

requests = st.one_of(
    st.builds(p.Identify, method=st.sampled_from(["card", "code", "password"]), value=secret,
              username=st.none() | text(min_size=1, max_size=254),
              page_size=st.none() | st.integers(10, 500)),
    st.builds(p.Associate, request_id=ids, card=secret,
              method=st.sampled_from(["code", "password"]), value=secret,
              username=st.none() | text(min_size=1, max_size=254),
              page_size=st.none() | st.integers(10, 500)),
    st.builds(p.DeleteJobs, request_id=ids, session=secret,
              job_ids=st.lists(ids, min_size=1, max_size=20).map(tuple)),
    st.builds(p.ListJobs, session=secret, offset=st.integers(0, 1_000_000),
              limit=st.integers(1, 500)),
    st.builds(p.Release, request_id=ids, session=secret,
              job_ids=st.lists(ids, max_size=20).map(tuple), all_held=st.booleans(),
              grayscale=st.booleans(), duplex=st.booleans(),
              copies=st.none() | st.integers(1, 99)),
    st.builds(p.FetchDocument, release_id=ids, job_id=ids, offset=nonneg,
              length=st.integers(1, messages.DOCUMENT_CHUNK_BYTES)),
    st.builds(p.JobPrinted, request_id=ids, release_id=ids, job_id=ids),
    st.builds(p.JobFailed, request_id=ids, release_id=ids, job_id=ids,
              reason=text(max_size=200)),
    st.builds(p.Logout, request_id=ids, session=secret),
)

hours = st.floats(0, 10_000, allow_nan=False, allow_infinity=False)
first_pages = st.builds(
    p.JobList, jobs=st.lists(job_summary, max_size=5).map(tuple), total=nonneg,
    expired=nonneg, hold_hours=hours, unlinked=nonneg)
identified = st.builds(
    p.IdentifyResult, session=secret, user_id=ids, display_name=text(max_size=128),
    expires_in=nonneg, note=text(max_size=200),
    role=st.sampled_from([p.ROLE_USER, p.ROLE_TECHNICIAN]), language=languages)

results = st.one_of(
    st.tuples(st.just("identify"), identified),
    # With the user's first page on it (issue 13).
    st.tuples(st.just("identify"), st.builds(p.IdentifyResult.with_first_page, identified,
                                             first_pages)),
    st.tuples(st.just("jobs.list"), st.builds(
        p.JobList, jobs=st.lists(job_summary, max_size=5).map(tuple), total=nonneg,
        offset=nonneg, expired=nonneg, hold_hours=hours, unlinked=nonneg)),
    st.tuples(st.just("jobs.release"), st.builds(
        p.ReleaseResult, release_id=ids, jobs=st.lists(released_job, max_size=5).map(tuple))),
    st.tuples(st.just("jobs.document"), st.builds(
        p.DocumentChunk, job_id=ids, offset=nonneg, data=st.binary(max_size=512), total=nonneg)),
    st.tuples(st.sampled_from(["jobs.printed", "jobs.failed", "logout", "jobs.delete"]),
              st.builds(p.Ack, of=text(max_size=32))),
)


@given(requests)
def test_every_request_round_trips(req: p.Request) -> None:
    assert p.decode_request(p.encode(req)) == req


@given(results)
def test_every_result_round_trips(pair: tuple[str, p.Result]) -> None:
    answering, result = pair
    assert p.decode_response(p.encode_result(result, answering), answering) == result


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_request_or_a_protocol_error(data: bytes) -> None:
    try:
        p.decode_request(data)
    except ProtocolError as exc:
        assert exc.code in {c.value for c in ErrorCode}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@settings(max_examples=300)
@given(st.sampled_from(sorted(messages.REQUESTS)),
       st.dictionaries(st.sampled_from(["request_id", "session", "method", "value", "job_ids",
                                        "offset", "limit", "release_id", "job_id", "reason",
                                        "length", "extra", "card", "username", "all_held",
                                        "grayscale", "duplex", "copies"]), json_values,
                       max_size=6))
def test_arbitrary_json_objects_give_a_request_or_an_error_naming_a_field(
        kind: str, body: dict[str, object]) -> None:
    data = json.dumps({"v": 1, "type": kind, **body}).encode()
    try:
        req = p.decode_request(data)
    except ProtocolError as exc:
        assert exc.error_code is ErrorCode.INVALID_FIELD
        assert (exc.field and exc.field.split("[")[0] in body) or exc.field in _required(kind)
    else:
        assert req.TYPE == kind


def _required(kind: str) -> set[str]:
    return {i.name for i in messages._SCHEMAS[messages.REQUESTS[kind]] if i.required}


@pytest.mark.parametrize("kind", sorted(messages.REQUESTS))
def test_a_missing_required_field_is_named(kind: str) -> None:
    for name in _required(kind):
        with pytest.raises(ProtocolError) as info:
            p.decode_request(json.dumps({"v": 1, "type": kind}).encode())
        assert info.value.field in _required(kind)
        assert name  # every required field is reachable through the loop above


def test_field_errors_say_which_field_and_why() -> None:
    bad = {"v": 1, "type": "jobs.list", "session": "s", "limit": 0}
    with pytest.raises(ProtocolError) as info:
        p.decode_request(json.dumps(bad).encode())
    assert info.value.field == "limit"
    assert "at least 1" in str(info.value)
    bad = {"v": 1, "type": "jobs.release", "request_id": "r1", "session": "s",
           "job_ids": ["ok", "no spaces"]}
    with pytest.raises(ProtocolError) as info:
        p.decode_request(json.dumps(bad).encode())
    assert info.value.field == "job_ids[1]"


def test_unknown_fields_are_ignored_and_unknown_versions_refused() -> None:
    newer = {"v": 1, "type": "identify", "method": "card", "value": "1234", "hint": "x"}
    assert p.decode_request(json.dumps(newer).encode()) == p.Identify("card", "1234")
    with pytest.raises(ProtocolError) as info:
        p.decode_request(json.dumps({**newer, "v": 2}).encode())
    assert info.value.error_code is ErrorCode.UNSUPPORTED_VERSION
    with pytest.raises(ProtocolError) as info:
        p.decode_request(json.dumps({**newer, "type": "format.disk"}).encode())
    assert info.value.error_code is ErrorCode.UNKNOWN_TYPE


def test_oversized_message_is_refused_before_parsing() -> None:
    data = b'{"v":1,"type":"identify","method":"card","value":"' + b"1" * 70_000 + b'"}'
    with pytest.raises(ProtocolError) as info:
        p.decode_request(data)
    assert info.value.error_code is ErrorCode.TOO_LARGE


def test_error_answers_decode_to_remote_errors() -> None:
    data = p.encode_error("identify", ErrorCode.UNKNOWN_CARD, "card not known")
    with pytest.raises(RemoteError) as info:
        p.decode_response(data, "identify")
    assert info.value.code == "unknown_card"
    assert info.value.retry_after is None
    locked = p.encode_error("identify", ErrorCode.LOCKED_OUT, "locked", retry_after=300)
    with pytest.raises(RemoteError) as info:
        p.decode_response(locked, "identify")
    assert info.value.code == "locked_out" and info.value.retry_after == 300
    with pytest.raises(ProtocolError):
        p.decode_response(p.encode_result(p.Ack(), "logout"), "identify")


def test_mutating_requests_carry_request_ids() -> None:
    assert p.is_mutating(p.Release("r", "s", ("j",)))
    assert p.is_mutating(p.JobPrinted("r", "rel", "j"))
    assert not p.is_mutating(p.Identify("card", "1"))
    assert not p.is_mutating(p.ListJobs("s"))


def test_secrets_are_redacted_for_logs() -> None:
    shown = messages.redacted(p.Identify("card", "0012345678"))
    assert "0012345678" not in json.dumps(shown)
    shown = messages.redacted(p.DocumentChunk("j", 0, b"secret doc", 10))
    assert "secret" not in json.dumps(shown)


statuses = st.builds(p.DeviceStatus, state=st.sampled_from(["online", "offline"]),
                     epoch=st.integers(0, 10**6), since=st.floats(0, 4e9))


@given(statuses)
def test_status_round_trips(s: p.DeviceStatus) -> None:
    assert p.decode_status(p.encode(s)) == s


def test_a_late_will_cannot_overwrite_a_fresh_online() -> None:
    online_5 = p.DeviceStatus("online", 5)
    late_will_4 = p.DeviceStatus("offline", 4)
    assert not p.status_supersedes(online_5, late_will_4)
    assert p.status_supersedes(online_5, p.DeviceStatus("offline", 5))
    assert p.status_supersedes(p.DeviceStatus("offline", 5), p.DeviceStatus("online", 6))
    assert not p.status_supersedes(p.DeviceStatus("offline", 5), p.DeviceStatus("online", 5))


@given(st.lists(statuses, min_size=1, max_size=10))
def test_status_order_keeps_the_newest_epoch(seq: list[p.DeviceStatus]) -> None:
    current = None
    for s in seq:
        if p.status_supersedes(current, s):
            current = s
    assert current is not None and current.epoch == max(s.epoch for s in seq)


def test_topics_are_per_device_and_parse_back() -> None:
    assert topics.request_topic("dev-1") == "mfd/v1/dev/dev-1/req"
    assert topics.parse_device_topic("mfd/v1/dev/dev-1/resp") == ("dev-1", "resp")
    for bad in ("mfd/v1/dev/+/req", "mfd/v1/dev/a/b/req", "other/v1/dev/a/req",
                "mfd/v1/dev/a/unknown"):
        with pytest.raises(ProtocolError):
            topics.parse_device_topic(bad)
    for bad_id in ("", "+", "#", "a/b", "A" * 70, "Dev"):
        with pytest.raises(ProtocolError):
            topics.request_topic(bad_id)


device_ids = st.from_regex(topics.DEVICE_ID_RE, fullmatch=True)


@given(device_ids)
def test_a_device_role_names_only_its_own_topics(device_id: str) -> None:
    """dynsec matches ACL topics literally: a device's role grants its own six topics by name,
    subscriptions literal only, no wildcard, no shared subscription, nothing else."""
    role = topics.device_role(device_id)
    assert role["rolename"] == topics.DEVICE_ROLE_PREFIX + device_id
    own = f"mfd/v1/dev/{device_id}/"
    grants = {(a["acltype"], a["topic"]) for a in role["acls"]}
    assert all(a["allow"] is True for a in role["acls"])
    assert grants == {("publishClientSend", own + "req"), ("publishClientSend", own + "status"),
                      ("publishClientSend", own + "events"),
                      ("subscribeLiteral", own + "resp"), ("subscribeLiteral", own + "cmd"),
                      ("subscribeLiteral", own + "status"),
                      ("subscribeLiteral", own + "notify"),
                      ("publishClientReceive", own + "resp"),
                      ("publishClientReceive", own + "cmd"),
                      ("publishClientReceive", own + "status"),
                      ("publishClientReceive", own + "notify")}
    assert not any(c in str(t) for _k, t in grants for c in "+#$%")


def test_broker_roles_deny_by_default_and_keep_the_cloud_group() -> None:
    assert topics.DYNSEC_DEFAULT_ACCESS == {"publishClientSend": False,
                                            "publishClientReceive": False,
                                            "subscribe": False, "unsubscribe": True}
    roles = {r["rolename"]: r for r in topics.broker_roles(("copier-1",))}
    assert set(roles) == {topics.CLOUD_ROLE, topics.BROKER_ADMIN_ROLE, "mfd-device-copier-1"}
    cloud = {(a["acltype"], a["topic"]) for a in roles[topics.CLOUD_ROLE]["acls"]}
    # The worker's shared subscriptions are granted by a pattern that covers them exactly.
    assert ("subscribePattern", "$share/cloud/mfd/v1/#") in cloud
    assert topics.CLOUD_REQUEST_SUBSCRIPTION.startswith("$share/cloud/mfd/v1/")
    admin = {a["topic"] for a in roles[topics.BROKER_ADMIN_ROLE]["acls"]}
    assert admin == {"$CONTROL/dynamic-security/#"}
    assert topics.is_reserved_account(topics.BROKER_ADMIN_USER)


@given(st.sampled_from(["cloud", "cloud-0", "cloud-17", "admin", "broker-admin", "dynsec",
                        "mfd-x"]))
def test_reserved_names_never_get_a_device_role_from_the_writer(name: str) -> None:
    from cloud.broker_accounts import dynsec_config

    with pytest.raises(ProtocolError, match="reserved"):
        topics.check_new_device_id(name)
    with pytest.raises(ProtocolError, match="reserved"):
        dynsec_config({}, ("broker-admin", "pw"), devices={name: "pw"}, iterations=1)


# --------------------------------------------------------------------------- hostile input
# Every payload a peer can send decodes to a valid message or raises ProtocolError (never
# anything else), and the error answer to it can always be encoded as UTF-8 JSON that a device
# decodes. The generators reach what JSON can carry and Python's codec lets through: lone UTF-16
# surrogates ("\ud800" escapes), integers far past 64 bits, floats that overflow to infinity,
# the non-standard NaN/Infinity tokens, deep nesting and every wrong type.

any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12)
lone_surrogates = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d"])
hostile_text = any_text | lone_surrogates | st.sampled_from(["card", "code", "password"])
hostile_numbers = (st.integers() | st.integers(min_value=2**53 - 2, max_value=2**70)
                   | st.integers(max_value=-(2**53 - 2), min_value=-(2**70))
                   | st.sampled_from([10**400, -(10**400), 2**63, 2**64, 2**31])
                   | st.floats(allow_nan=True, allow_infinity=True))
hostile_values = st.recursive(
    st.none() | st.booleans() | hostile_numbers | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8)
FIELD_NAMES = sorted({i.name for schema in messages._SCHEMAS.values() for i in schema}
                     | {"extra"})
TYPES = [*sorted(messages.REQUESTS), "status", "config.ack", "jobs.changed"]


@st.composite
def hostile_payloads(draw: st.DrawFn) -> bytes:
    """A JSON-ish object with a v, a type and fields, any of which may be hostile, serialised
    the way a peer might: escaped (lone surrogates as \\udXXX), raw UTF-8 (lone surrogates as
    the bytes Python's surrogatepass writes, which are not UTF-8), or with a huge exponent."""
    obj: dict[str, object] = {}
    obj["v"] = draw(st.just(1) | hostile_numbers | hostile_text)
    obj["type"] = draw(st.sampled_from(TYPES) | hostile_text | hostile_numbers)
    obj.update(draw(st.dictionaries(st.sampled_from(FIELD_NAMES), hostile_values, max_size=6)))
    style = draw(st.sampled_from(["escaped", "raw", "exponent", "deep"]))
    if style == "raw":
        return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    text = json.dumps(obj)
    if style == "exponent":
        text = text.replace("}", ', "since": 1e999, "offset": 1' + "0" * 40 + "}", 1)
    elif style == "deep":
        text = text.replace("}", ', "extra": ' + "[" * 5000 + "]" * 5000 + "}", 1)
    return text.encode("utf-8")


def _check_error_answer_encodes(data: bytes, exc: ProtocolError) -> None:
    answer = messages.error_from(exc, messages.request_type_of(data))
    answer.decode("utf-8")  # strict: a device must be able to read it
    with pytest.raises(RemoteError) as info:
        p.decode_response(answer, messages.request_type_of(data))
    assert info.value.code == exc.error_code.value


@settings(max_examples=1500, deadline=None)
@given(hostile_payloads())
def test_hostile_payloads_decode_or_raise_the_protocol_error_and_the_answer_encodes(
        data: bytes) -> None:
    for decode in (p.decode_request, p.decode_status, messages.decode_event,
                   messages.decode_notification):
        try:
            msg = decode(data)
        except ProtocolError as exc:
            assert exc.code in {c.value for c in ErrorCode}
            _check_error_answer_encodes(data, exc)
        else:
            # What decodes is valid: it encodes again (strict UTF-8) and round-trips.
            again = p.encode(msg)
            again.decode("utf-8")
            assert decode(again) == msg


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TYPES), st.sampled_from(FIELD_NAMES), hostile_values)
def test_one_hostile_field_in_an_otherwise_good_message(kind: str, name: str,
                                                        value: object) -> None:
    bases: dict[str, dict[str, object]] = {
        "identify": {"method": "card", "value": "0001234567"},
        "status": {"state": "online", "epoch": 5},
        "config.ack": {"version": 3, "applied": True},
    }
    base = bases.get(kind, {})
    data = json.dumps({"v": 1, "type": kind, **base, name: value}).encode()
    for decode in (p.decode_request, p.decode_status, messages.decode_event,
                   messages.decode_notification):
        try:
            msg = decode(data)
        except ProtocolError as exc:
            _check_error_answer_encodes(data, exc)
        else:
            assert decode(p.encode(msg)) == msg


@pytest.mark.parametrize("data", [
    b'{"v":1,"type":"\\ud800"}',
    b'{"v":1,"type":"\\udfffidentify","method":"card","value":"1"}',
    b'{"v":1,"type":"identify","method":"card","value":"\\udc00"}',
    b'{"v":1,"type":"status","state":"online","epoch":5,"since":1' + b"0" * 400 + b"}",
    b'{"v":1,"type":"status","state":"online","epoch":' + str(2**64).encode() + b"}",
    b'{"v":1,"type":"status","state":"online","epoch":5,"since":NaN}',
    b'{"v":1,"type":"status","state":"online","epoch":5,"since":-Infinity}',
    b'{"v":1,"type":"status","state":"online","epoch":5,"since":1e999}',
    b'{"v":1,"type":"config.ack","version":' + str(2**40).encode() + b',"applied":true}',
    b'{"v":1,"type":"jobs.document","release_id":"r","job_id":"j","offset":' +
    str(2**64).encode() + b"}",
])
def test_known_hostile_payloads_are_protocol_errors_with_an_answer(data: bytes) -> None:
    """The reproductions of issue 8 (11): a lone surrogate in ``type`` made the error answer
    unencodable; a huge integer reached the store; NaN and an overflowing float were taken."""
    outcomes = []
    for decode in (p.decode_request, p.decode_status, messages.decode_event):
        try:
            decode(data)
            outcomes.append("decoded")
        except ProtocolError as exc:
            _check_error_answer_encodes(data, exc)
            outcomes.append(exc.error_code.value)
    assert "decoded" not in outcomes, outcomes


def test_integers_are_bounded_to_what_every_peer_and_store_can_hold() -> None:
    ok = {"v": 1, "type": "status", "state": "online", "epoch": messages.MAX_INT}
    assert p.decode_status(json.dumps(ok).encode()).epoch == messages.MAX_INT
    with pytest.raises(ProtocolError) as info:
        p.decode_status(json.dumps({**ok, "epoch": messages.MAX_INT + 1}).encode())
    assert info.value.field == "epoch"


@st.composite
def hostile_answers(draw: st.DrawFn) -> tuple[str, bytes]:
    """What a broken or hostile cloud might send a device: an answer to one of its request
    types, ok or not, with hostile values anywhere, in the error object too."""
    answering = draw(st.sampled_from(sorted(messages.RESULT_FOR)))
    obj: dict[str, object] = {"v": 1, "type": draw(st.just(answering) | hostile_text)}
    obj["ok"] = draw(st.booleans() | hostile_values)
    if obj["ok"] is False:
        obj["error"] = draw(st.fixed_dictionaries(
            {"code": hostile_text | st.sampled_from(["locked_out", "busy"])},
            optional={"message": hostile_values, "field": hostile_values,
                      "retry_after": hostile_numbers}) | hostile_values)
    obj.update(draw(st.dictionaries(st.sampled_from(FIELD_NAMES), hostile_values, max_size=5)))
    return answering, json.dumps(obj).encode()


@settings(max_examples=1000, deadline=None)
@given(hostile_answers())
def test_hostile_answers_give_a_result_a_remote_error_or_a_protocol_error(
        pair: tuple[str, bytes]) -> None:
    answering, data = pair
    try:
        result = p.decode_response(data, answering)
    except RemoteError as exc:
        # What the device shows and waits on is text it can encode, a wait it can add.
        for text in (exc.code, exc.message, exc.field or ""):
            text.encode("utf-8")
            assert "\x00" not in text
        assert exc.retry_after is None or 0 <= exc.retry_after <= messages.MAX_INT
    except ProtocolError as exc:
        assert exc.code in {c.value for c in ErrorCode}
    else:
        assert p.decode_response(p.encode_result(result, answering), answering) == result


def test_a_jobs_changed_notice_names_nobody_and_round_trips() -> None:
    notice = messages.JobsChanged()
    wire = p.encode(notice)
    assert messages.decode_notification(wire) == notice
    # Only the envelope travels: no user, job name or count to a device where they are not.
    assert json.loads(wire) == {"v": 1, "type": "jobs.changed"}
    assert topics.notify_topic("copier-1") == "mfd/v1/dev/copier-1/notify"
    assert topics.parse_device_topic("mfd/v1/dev/copier-1/notify") == ("copier-1", "notify")


def test_an_older_list_answer_without_the_why_fields_still_decodes() -> None:
    old = b'{"v":1,"type":"jobs.list","ok":true,"jobs":[],"total":0}'
    listed = p.decode_response(old, "jobs.list")
    assert isinstance(listed, p.JobList)
    assert (listed.expired, listed.hold_hours, listed.unlinked) == (0, 0.0, 0)


# The user's language in an identify answer (issue 10): optional, and only a language tag.

_IDENTIFIED = {"v": 1, "type": "identify", "ok": True, "session": "s", "user_id": "u1",
               "display_name": "Aiko", "expires_in": 300}


def test_an_identify_answer_without_a_language_still_decodes_as_not_known() -> None:
    answer = p.decode_response(json.dumps(_IDENTIFIED).encode(), "identify")
    assert isinstance(answer, p.IdentifyResult)
    assert answer.language == ""
    said = p.decode_response(json.dumps({**_IDENTIFIED, "language": "ja"}).encode(), "identify")
    assert isinstance(said, p.IdentifyResult)
    assert said.language == "ja"


@settings(max_examples=500, deadline=None)
@given(text(max_size=40) | any_text | st.integers()
       | st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.none()
       | st.sampled_from(["\u65e5\u672c", "d\u00e9", "\u0661\u0662", "ja\n", "ja-\uff2a\uff30",
                          " ja", "j", "abcd", "de-", "de--CH", "x" * 36]))
def test_a_language_is_a_tag_or_the_answer_is_refused_naming_it(value: object) -> None:
    """Whatever a bad cloud puts in ``language`` (another script's letters or digits, a
    number, a line break), the device gets a tag of ASCII letters, digits and "-" or a
    ProtocolError naming the field and what it must be: never text it would look up as is."""
    data = json.dumps({**_IDENTIFIED, "language": value}).encode()
    try:
        answer = p.decode_response(data, "identify")
    except ProtocolError as exc:
        assert exc.field == "language"
        assert exc.error_code is ErrorCode.INVALID_FIELD
        assert "language" in exc.message
    else:
        assert isinstance(answer, p.IdentifyResult)
        assert isinstance(value, str) and answer.language == value
        assert value.isascii() and len(value) <= messages.LANGUAGE_MAX
        assert all(c.isalnum() or c in "-_" for c in value)
        assert messages.is_language_tag(value)


@pytest.mark.parametrize("value", ["\u65e5\u672c\u8a9e", "\u0661\u0662", "ja-\uff2a\uff30", 81, 1.5,
                                   "ja\n", "de-" + "-".join(["abcdefgh"] * 4)])
def test_known_bad_languages_are_refused_with_a_clear_error(value: object) -> None:
    data = json.dumps({**_IDENTIFIED, "language": value}).encode()
    with pytest.raises(ProtocolError) as info:
        p.decode_response(data, "identify")
    assert info.value.field == "language"
    assert info.value.message.startswith("language must ")


# The first page of jobs in an identify answer (issue 13): optional both ways.


@given(identified, first_pages)
def test_a_first_page_travels_whole_and_comes_back_as_the_list_it_was(
        answer: p.IdentifyResult, page: p.JobList) -> None:
    with_page = p.decode_response(p.encode_result(answer.with_first_page(page), "identify"),
                                  "identify")
    assert isinstance(with_page, p.IdentifyResult)
    assert with_page.first_page() == page
    assert dataclasses.replace(with_page, jobs=None, total=0, expired=0, hold_hours=0.0,
                               unlinked=0) == answer


def test_an_identify_answer_from_an_older_cloud_carries_no_page() -> None:
    answer = p.decode_response(json.dumps(_IDENTIFIED).encode(), "identify")
    assert isinstance(answer, p.IdentifyResult)
    assert answer.jobs is None and answer.first_page() is None
    # An empty page is a page: the user has no jobs, and the device need not ask.
    empty = p.decode_response(json.dumps({**_IDENTIFIED, "jobs": [], "total": 0}).encode(),
                              "identify")
    assert isinstance(empty, p.IdentifyResult)
    assert empty.first_page() == p.JobList(jobs=(), total=0)


def test_a_first_page_field_that_does_not_fit_is_named() -> None:
    for name, value in (("jobs", [{"job_id": "j1"}]), ("total", -1), ("hold_hours", "x"),
                        ("jobs", {})):
        data = json.dumps({**_IDENTIFIED, "jobs": [], name: value}).encode()
        with pytest.raises(ProtocolError) as info:
            p.decode_response(data, "identify")
        assert info.value.field is not None and info.value.field.startswith(name)


def test_a_page_size_is_optional_and_bounded_as_the_policy_bounds_it() -> None:
    old = {"v": 1, "type": "identify", "method": "card", "value": "1234"}
    assert p.decode_request(json.dumps(old).encode()) == p.Identify("card", "1234")
    for size in (10, 100, 500):
        req = p.decode_request(json.dumps({**old, "page_size": size}).encode())
        assert isinstance(req, p.Identify) and req.page_size == size
    for size in (9, 501, "100", 100.5):
        with pytest.raises(ProtocolError) as info:
            p.decode_request(json.dumps({**old, "page_size": size}).encode())
        assert info.value.field == "page_size"
