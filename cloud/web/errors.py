"""Which HTTP status answers which refusal code (the codes of protocol.errors.ErrorCode and
cloud.linking.LinkCode): pages and the JSON API answer a refusal the same way."""

from __future__ import annotations

import traceback
from pathlib import Path

from cloud.linking import LinkCode
from protocol.errors import ErrorCode

STATUS: dict[str, int] = {
    ErrorCode.BAD_REQUEST: 400, ErrorCode.INVALID_FIELD: 400, LinkCode.WEAK_PASSWORD: 400,
    LinkCode.IMPORT_INVALID: 400, LinkCode.CHECKSUM_MISMATCH: 400, LinkCode.UNKNOWN_QUEUE: 400,
    "config_invalid": 400,
    LinkCode.INVALID_TOKEN: 401, LinkCode.TOKEN_EXPIRED: 401, LinkCode.INVALID_CODE: 401,
    ErrorCode.INVALID_PASSWORD: 401, ErrorCode.INVALID_SESSION: 401,
    ErrorCode.NOT_ALLOWED: 403, "csrf_failed": 403, "registration_refused": 403,
    LinkCode.UNKNOWN_USER: 404, "not_found": 404,
    "method_not_allowed": 405, LinkCode.CONFLICT: 409, "conflict": 409, "length_required": 411,
    ErrorCode.TOO_LARGE: 413, "uri_too_long": 414, "unsupported_type": 415,
    ErrorCode.LOCKED_OUT: 429,
    ErrorCode.INTERNAL: 500, "not_enabled": 501, ErrorCode.BUSY: 503,
}


def status_of(code: str) -> int:
    """A refusal nobody mapped is the client's fault (400), never a server error."""
    return STATUS.get(code, 400)


def bug_report(exc: BaseException) -> str:
    """What a log may keep of an unexpected exception: its type and where it was raised, never
    its message or arguments (an exception may quote a token, a password or a card number)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(exc).__name__} at {where or '?'}"
