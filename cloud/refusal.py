"""How the cloud refuses a device's request, and how stored text goes back to a device: shared by
identification (cloud/identity.py) and the job requests (cloud/service.py)."""

from __future__ import annotations

from protocol.errors import ErrorCode, MfdError


class Refused(MfdError):
    """A well-formed request the cloud will not do; becomes an ``ok: false`` answer."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message, code=code.value)
        self.error_code = code
        self.field = field
        self.retry_after = retry_after


def shown(text: str) -> str:
    """Text from the store as the protocol carries it: a NUL (which a SQLite store can hold,
    from a print client's job name) would make the device refuse the whole answer."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text
