"""The panel's catalogues: every string the code marks is translated into every language, with
the same placeholders; nothing stale is kept; the language is chosen as documented; a broken
translation still shows words."""

from __future__ import annotations

import datetime as dt
import gettext
import re
import string

import pytest
from babel.messages.catalog import Message
from hypothesis import given
from hypothesis import strategies as st

from device_app import i18n
from device_app.i18n import catalogue

TEMPLATE = catalogue.extracted()
MARKED = [m for m in TEMPLATE if m.id]


def _ids(message: Message) -> tuple[str, ...]:
    return (message.id,) if isinstance(message.id, str) else tuple(message.id)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_code_marks_its_words() -> None:
    # The presenter's notices and the screens' labels: if extraction found few, the keywords
    # or the source folder are wrong and every other test here would pass on nothing.
    assert len(MARKED) >= 60, [m.id for m in MARKED]
    assert any(isinstance(m.id, tuple) for m in MARKED), "no plural is marked"


@pytest.mark.parametrize("language", catalogue.TARGETS)
def test_every_marked_string_is_translated(language: str) -> None:
    po = catalogue.read(language)
    missing, fuzzy, wrong_fields, stale = [], [], [], []
    for source in MARKED:
        entry = po.get(source.id)
        if entry is None or not entry.string or (isinstance(entry.string, tuple)
                                                 and not all(entry.string)):
            missing.append(_ids(source)[0])
            continue
        if entry.fuzzy:
            fuzzy.append(_ids(source)[0])
        wanted = set().union(*(_fields(t) for t in _ids(source)))
        got = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for text in got:
            # A translation may leave {n} out of a one-form plural ("1 件" is "{n} 件" too),
            # but never names a placeholder the code does not fill.
            if not _fields(text) <= wanted or (not isinstance(source.id, tuple)
                                               and _fields(text) != wanted):
                wrong_fields.append((_ids(source)[0], text))
    ids = {_ids(m)[0] for m in MARKED}
    stale = [_ids(m)[0] for m in po if m.id and _ids(m)[0] not in ids]
    assert not missing, f"{language}: untranslated (python -m device_app.i18n.catalogue): " \
                        f"{missing}"
    assert not fuzzy, f"{language}: fuzzy: {fuzzy}"
    assert not wrong_fields, f"{language}: placeholders differ: {wrong_fields}"
    assert not stale, f"{language}: no longer in the code: {stale}"


@pytest.mark.parametrize("language", catalogue.TARGETS)
def test_plurals_have_the_forms_the_language_has(language: str) -> None:
    po = catalogue.read(language)
    for source in MARKED:
        if isinstance(source.id, tuple):
            entry = po.get(source.id)
            assert entry is not None and len(entry.string) == po.num_plurals, source.id


def test_a_language_is_chosen_user_first_then_device_then_english() -> None:
    assert i18n.choose("ja", "de") == "ja"
    assert i18n.choose(None, "de") == "de"
    assert i18n.choose("de-CH", None) == "de"  # near enough
    assert i18n.choose("fr_CA", "de") == "fr"
    assert i18n.choose("pt-BR", "fr") == "fr"  # no Portuguese: the device's
    assert i18n.choose("xx-not-a-tag", "zz") == "en"
    assert i18n.choose("", None) == "en"


@given(st.one_of(st.none(), st.text(max_size=20)), st.one_of(st.none(), st.text(max_size=20)))
def test_any_tag_chooses_a_language_the_panel_has(user: str | None, device: str | None) -> None:
    # Tags arrive from the cloud and from device.toml: any text must give a language, not raise.
    assert i18n.choose(user, device) in i18n.LANGUAGES


def test_the_panel_speaks_four_languages_at_least() -> None:
    assert {"en", "de", "fr", "ja"} <= set(i18n.LANGUAGES)


def test_plural_forms_follow_the_language() -> None:
    en, de, ja = i18n.translator("en"), i18n.translator("de"), i18n.translator("ja")
    source = next(m for m in MARKED if isinstance(m.id, tuple) and "{n}" in m.id[0])
    one, many = source.id
    assert en.ngettext(one, many, 1) == one.format(n=1)
    assert en.ngettext(one, many, 3) == many.format(n=3)
    assert de.ngettext(one, many, 1) != de.ngettext(one, many, 3)
    # Japanese has one form: the same words, only the number changes.
    assert re.sub(r"\d+", "N", ja.ngettext(one, many, 1)) == \
        re.sub(r"\d+", "N", ja.ngettext(one, many, 3))
    assert ja.ngettext(one, many, 3) != many.format(n=3)


def test_dates_and_times_as_each_language_writes_them() -> None:
    when = dt.datetime(2026, 3, 3, 9, 41)
    assert i18n.translator("en").time(when) == "09:41"
    assert i18n.translator("en").date(when, with_year=False) == "3 Mar"
    assert i18n.translator("de").date(when, with_year=False) == "3. März"
    assert i18n.translator("ja").date(when, with_year=True) == "2026年3月3日"


def test_a_broken_translation_shows_the_english() -> None:
    class Broken(gettext.NullTranslations):
        def gettext(self, message: str) -> str:
            return "{nonsense} kaputt"

    tr = i18n.Translator("de", Broken())
    assert tr.gettext("{count} printed", count=2) == "2 printed"


def test_unknown_languages_fall_back_to_english() -> None:
    assert i18n.translator("tlh").language == "en"
    assert i18n.translator("de_AT").language == "de"
