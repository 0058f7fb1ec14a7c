"""The one error tree of mfdkit.

Every error mfdkit raises on purpose derives from :class:`MfdError` and carries a stable
``code`` that a user, technician or peer can look up (docs/protocol.md lists the wire codes).
Library errors (paho, pyserial, sqlite3, pygame) are translated into these at the adapter that
owns the library, so callers never need to know which library sat underneath.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Error codes on the wire (``{"ok": false, "error": {"code": ...}}``) and in the CLI."""

    # The message itself is wrong.
    BAD_REQUEST = "bad_request"  # not JSON, not an object, or not UTF-8
    INVALID_FIELD = "invalid_field"  # a field is missing, of the wrong type, or out of range
    UNKNOWN_TYPE = "unknown_type"  # a message type this version does not know
    UNSUPPORTED_VERSION = "unsupported_version"  # "v" is not a version we speak
    TOO_LARGE = "too_large"  # the payload exceeds the size limit
    WRONG_REPLY_TOPIC = "wrong_reply_topic"  # Response Topic is not the device's own
    # Who is asking.
    UNKNOWN_DEVICE = "unknown_device"  # the device is not registered with any org
    UNKNOWN_CARD = "unknown_card"
    UNKNOWN_CODE = "unknown_code"
    # An error code, not a secret (hence the noqa): unknown username or wrong password, never
    # which of the two.
    INVALID_PASSWORD = "invalid_password"  # noqa: S105
    WRONG_PIN = "wrong_pin"  # a badge's PIN did not match
    LOCKED_OUT = "locked_out"  # too many wrong guesses; error.retry_after says for how long
    # Too many unknown badges from this device or its org: every badge lookup is refused until
    # error.retry_after has passed, known badges too (else the answer would tell which are).
    THROTTLED = "throttled"
    CARD_LIMIT = "card_limit"  # the user has as many cards as the org allows
    INVALID_SESSION = "invalid_session"  # no such session, expired, or ended
    WRONG_DEVICE = "wrong_device"  # a session or release used from another device
    # What they ask for.
    JOB_NOT_FOUND = "job_not_found"
    JOB_NOT_HELD = "job_not_held"
    UNKNOWN_RELEASE = "unknown_release"
    NOT_ALLOWED = "not_allowed"  # the org's policy does not allow this (e.g. changes at release)
    # The service.
    BUSY = "busy"
    INTERNAL = "internal"


class MfdError(Exception):
    """Root of every error mfdkit raises on purpose."""

    code: str = "mfd_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ProtocolError(MfdError):
    """A message that does not satisfy the contract. ``field`` names the offending field."""

    code = ErrorCode.BAD_REQUEST.value

    def __init__(self, message: str, *, code: ErrorCode = ErrorCode.BAD_REQUEST,
                 field: str | None = None) -> None:
        super().__init__(message, code=code.value)
        self.error_code = code
        self.field = field


class RemoteError(MfdError):
    """The peer answered ``ok: false``; ``code`` is the peer's error code; ``retry_after`` (s)
    comes with ``locked_out`` and ``busy``."""

    def __init__(self, code: str, message: str, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field
        self.retry_after = retry_after


class ConfigError(MfdError):
    """Configuration that fails validation; the message names the key."""

    code = "config_invalid"


class ReaderError(MfdError):
    """A card reader failed (port gone, device not answering)."""

    code = "reader_error"


class FrameError(ReaderError):
    """A reader codec met bytes that are not a valid frame. The codec resynchronises."""

    code = "bad_frame"


class LinkError(MfdError):
    """The cloud could not be reached or did not answer in time."""

    code = "unreachable"


class EngineError(MfdError):
    """The print engine refused or failed a job."""

    code = "engine_error"


class StoreError(MfdError):
    """A storage backend failed or was given something it cannot store."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The storage backend cannot be reached now (a database server restarting, a lost
    connection, a lock held too long): the same request may succeed in a moment, so the cloud
    answers ``busy`` with a retry time rather than ``internal``."""

    code = "store_unavailable"
