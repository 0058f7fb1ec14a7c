"""The entry form: what a user types at the panel (an access code, a PIN, an email and password)
and the request it becomes. Pure record-keeping for the session machine, which decides what a
form's ENTER or Cancel leads to; the words on the form are the presenter's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol import messages as m

#: An entry error that is not an error code: a field left empty (``EMPTY + field name``).
EMPTY = "empty:"

_FIELDS = {"code": ("code",), "pin": ("pin",), "password": ("username", "password"),
           "associate_code": ("code",), "associate_password": ("username", "password")}
_FIELD_LIMITS = {"code": 10, "pin": 10, "username": 254, "password": 128}
# The other way in, offered on the form: access code <-> username + password.
_SWITCH = {"associate_code": "associate_password", "associate_password": "associate_code",
           "code": "password", "password": "code"}


@dataclass(slots=True)
class Entry:
    kind: str  # code, pin, password, associate_code, associate_password
    values: dict[str, str]
    focus: str
    #: "", an error code (the last try was refused), or EMPTY + the field left empty.
    error: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    def type_key(self, key: str) -> None:
        """One key other than ENTER: a character, BACKSPACE, CLEAR or TAB."""
        value = self.values[self.focus]
        if key == "BACKSPACE":
            self.values[self.focus] = value[:-1]
        elif key == "CLEAR":
            self.values[self.focus] = ""
        elif key == "TAB":
            names = self.names
            self.focus = names[(names.index(self.focus) + 1) % len(names)]
        elif len(key) == 1 and key.isprintable() and len(value) < _FIELD_LIMITS[self.focus]:
            if self.focus in ("code", "pin") and not key.isalnum():
                return  # codes and PINs are letters and digits; the form keeps its error
            self.values[self.focus] = value + key
        self.error = ""

    def switched(self, allow_password: bool) -> Entry | None:
        """The form for the other way in, if there is one and the policy allows it."""
        other = _SWITCH.get(self.kind)
        if other and (allow_password or "code" in other):
            return new_entry(other)
        return None

    def missing(self) -> str | None:
        """The first field left empty, or None when the form is complete."""
        return next((n for n in self.names if not self.values[n]), None)

    def request(self, card: str | None, new_id: Callable[[], str]) -> m.Identify | m.Associate:
        """What a complete form asks the cloud (``card``: the badge a PIN or a link is for)."""
        v = self.values
        if self.kind == "code":
            return m.Identify(method="code", value=v["code"])
        if self.kind == "password":
            return m.Identify(method="password", value=v["password"], username=v["username"])
        assert card is not None
        if self.kind == "pin":
            return m.Identify(method="card", value=card, pin=v["pin"])
        if self.kind == "associate_code":
            return m.Associate(request_id=new_id(), card=card, method="code", value=v["code"])
        return m.Associate(request_id=new_id(), card=card, method="password",
                           value=v["password"], username=v["username"])


def new_entry(kind: str, error: str = "") -> Entry:
    names = _FIELDS[kind]
    return Entry(kind, dict.fromkeys(names, ""), names[0], error)
