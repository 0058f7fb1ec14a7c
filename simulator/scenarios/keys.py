"""The simulator window's keyboard, decided without pygame: a key name (pygame.key.name's) and
the text it typed in, what the simulator should do out.

While the panel's keypad or keyboard has focus (an entry screen with a focused field), every
key types, digits included: 1-3 must not tap a badge in the middle of a PIN. Elsewhere the
digits tap badges and the function keys pull the hardware's faults.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_app.view import PanelView, Screen


@dataclass(frozen=True, slots=True)
class KeyAction:
    """``kind``: "tap" (``arg``: a demo user's index as text, "unknown" or "unknown-again"),
    "key" (``arg``: a character or ENTER/BACKSPACE/TAB for the panel's keypad), "fault"
    (``arg``: a FaultKind value), "overlay" (F1), or "none"."""

    kind: str
    arg: str = ""


NONE = KeyAction("none")

#: The overlay's lines (F1 shows and hides it), in the order the keys are listed.
HELP = (
    "1-3   tap the demo users' badges",
    "4     tap a new unknown badge",
    "5     tap the last unknown badge again",
    "F5    paper jam        F6  out of paper",
    "F7    clear the printer",
    "F8    unplug reader    F9  plug it in again",
    "F10   broker down (offline mode after 30 s)   F11 broker up",
    "F1    hide this        Esc quit",
)

_TYPING_KEYS = {"return": "ENTER", "enter": "ENTER", "backspace": "BACKSPACE", "tab": "TAB"}
_FAULT_KEYS = {"f5": "jam", "f6": "no_paper", "f7": "clear", "f8": "unplug", "f9": "replug",
               "f10": "broker_down", "f11": "broker_up"}


def typing_has_focus(view: PanelView) -> bool:
    """The panel's keypad/keyboard has focus: an entry screen with a field focused."""
    return (view.screen is Screen.ENTRY and view.entry is not None
            and any(f.focused for f in view.entry.fields))


def decide(name: str, text: str, view: PanelView, users: int = 3) -> KeyAction:
    if name == "f1":
        return KeyAction("overlay")
    if name in _FAULT_KEYS:
        return KeyAction("fault", _FAULT_KEYS[name])
    if typing_has_focus(view):
        if name in _TYPING_KEYS:
            return KeyAction("key", _TYPING_KEYS[name])
        if text and text.isprintable() and len(text) == 1:
            return KeyAction("key", text)
        return NONE
    if name.isdigit() and 1 <= int(name) <= users:
        return KeyAction("tap", str(int(name) - 1))
    if name == str(users + 1):
        return KeyAction("tap", "unknown")
    if name == str(users + 2):
        return KeyAction("tap", "unknown-again")
    return NONE
