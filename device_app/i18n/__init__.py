"""The panel's words in the person's language.

Theory of operation
-------------------
Every sentence the panel shows is written in English in the code, marked with :func:`N_` (or
passed straight to :meth:`Translator.gettext` / :meth:`Translator.ngettext`), and looked up in a
catalogue per language: ``locales/<lang>/LC_MESSAGES/panel.po``, gettext's format, so that
translators work with the tools they know. The catalogues are read with Babel (which also knows
each language's plural rules and how it writes dates and times) and turned into stdlib
``gettext`` translations in memory: no compiled ``.mo`` files to keep in step with the ``.po``.

Which language: the user's own when the cloud knows it, else the device's (``[ui] language`` or
the pushed policy), else English (:func:`choose`). A language the panel has no catalogue for
falls back to the nearest one it has ("de-CH" -> "de", "pt" -> "en").

Placeholders are named, ``str.format`` style ("{count} printed"), so that a translation may put
them in another order; tests/test_i18n.py checks that every catalogue translates every marked
string with the same placeholders, and that the catalogues hold nothing the code no longer says.

Pure: no pygame, no I/O but reading the catalogues of this package once per language.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
import logging
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

#: The catalogues' folder (one folder per language, gettext's layout).
LOCALES = Path(__file__).parent / "locales"
#: The domain, i.e. the catalogue's file name.
DOMAIN = "panel"
#: The language the code is written in; it needs no catalogue.
SOURCE = "en"
#: Every language the panel speaks, the source first.
LANGUAGES: tuple[str, ...] = (SOURCE, *sorted(p.name for p in LOCALES.iterdir()
                                              if (p / "LC_MESSAGES" / f"{DOMAIN}.po").exists()))


def N_(message: str) -> str:  # gettext's own name for the marker
    """Mark a string for the catalogue where it is defined (a table at import time); it is
    translated where it is shown."""
    return message


class Translator:
    """One language's words, plural rules, dates and times."""

    def __init__(self, language: str, translations: gettext.NullTranslations) -> None:
        self.language = language
        self._t = translations
        # English as the panel has always written it: 24-hour clock, day before month.
        self._locale = Locale.parse("en_GB" if language == SOURCE else language)

    def gettext(self, message: str, **values: Any) -> str:
        """``message`` in this language, its ``{placeholders}`` filled from ``values``."""
        return _fill(self._t.gettext(message), message, values)

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        """The form for ``n`` (``{n}`` is filled with it): "1 job" / "3 jobs"; a language with
        one form (Japanese) or three (none yet) is handled by its catalogue's plural rule."""
        return _fill(self._t.ngettext(singular, plural, n), singular, {"n": n, **values})

    def time(self, when: dt.datetime) -> str:
        """A time of day as this language writes it ("09:41", "9:41")."""
        return format_time(when, "short", locale=self._locale)

    def date(self, when: dt.date, *, with_year: bool) -> str:
        """A short date as this language writes it ("3 Mar", "3. März", "3月3日"), with the
        year when it is not this year's."""
        return format_skeleton("yMMMd" if with_year else "MMMd", when, locale=self._locale)


def _fill(text: str, source: str, values: dict[str, Any]) -> str:
    if not values:
        return text
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        # A broken translation must not blank the panel: say it in English instead.
        log.warning("translation of %r does not fit its placeholders: %s", source, exc)
        return source.format(**values)


def choose(user: str | None, device: str | None) -> str:
    """The language to speak: the user's if the panel has it (or a near one), else the
    device's, else English."""
    for wanted in (user, device):
        found = _nearest(wanted) if wanted else None
        if found is not None:
            return found
    return SOURCE


def _nearest(tag: str) -> str | None:
    try:
        wanted = Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return None
    return wanted.language if wanted.language in LANGUAGES else None


@cache
def translator(language: str) -> Translator:
    """The translator for ``language`` (or the nearest the panel has; English if none)."""
    found = _nearest(language) or SOURCE
    if found == SOURCE:
        return Translator(SOURCE, gettext.NullTranslations())
    return Translator(found, _load(found))


def _load(language: str) -> gettext.GNUTranslations:
    path = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)
