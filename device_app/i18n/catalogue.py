"""Keep the catalogues in step with the code: ``python -m device_app.i18n.catalogue``.

Finds every string the panel marks for translation (``N_``, ``.gettext``, ``.ngettext``) in the
device app's sources, adds the new ones to each language's ``panel.po`` (empty, for a
translator to fill) and drops the ones the code no longer says. tests/test_i18n.py runs the
same extraction and fails while a catalogue misses a translation, so a new English string
cannot reach a copier untranslated without the suite saying so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from device_app.i18n import DOMAIN, LOCALES, SOURCE
from protocol.engine import ENGINE_REASONS

#: Where the panel's words are written: the session's presenter and the panel's screens.
SOURCES = Path(__file__).parent.parent
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
#: New languages are added by naming them here and running this module.
TARGETS = ("de", "fr", "ja")


def extracted() -> Catalog:
    """Every marked string in the sources, as a template catalogue."""
    template = Catalog(domain=DOMAIN, project="mfdkit", locale=SOURCE)
    for filename, lineno, message, comments, context in _extract():
        template.add(message, locations=[(filename, lineno)], auto_comments=comments,
                     context=context)
    # The print engine's words for why it cannot print live in the engine contract
    # (protocol/engine.py), which knows nothing of the panel: the presenter translates them.
    for reason in ENGINE_REASONS.values():
        template.add(reason, locations=[("protocol/engine.py", 0)])
    return template


def _extract() -> Iterator[tuple[str, int, str | tuple[str, ...], list[str], str | None]]:
    method_map = [("i18n/**.py", "ignore"), ("**.py", "python")]
    yield from extract_from_dir(str(SOURCES), method_map=method_map,
                                keywords=KEYWORDS, strip_comment_tags=True)


def path_of(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(language: str) -> Catalog:
    with path_of(language).open("rb") as fh:
        return read_po(fh, locale=language)


def update(language: str, template: Catalog) -> tuple[int, int]:
    """Bring ``language``'s catalogue in step with ``template``: (added, dropped)."""
    path = path_of(language)
    if path.exists():
        catalog = read(language)
    else:
        catalog = Catalog(domain=DOMAIN, project="mfdkit", locale=Locale.parse(language),
                          copyright_holder="the mfdkit authors", fuzzy=False)
    before = {_key(m) for m in catalog if m.id}
    # No fuzzy matching: a near-miss guess shown on a copier is worse than English.
    catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
    catalog.obsolete.clear()
    after = {_key(m) for m in catalog if m.id}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, catalog, width=100, omit_header=False, sort_output=True,
                 include_lineno=False)
    return len(after - before), len(before - after)


def _key(message: Message) -> str:
    return message.id if isinstance(message.id, str) else message.id[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    template = extracted()
    for language in TARGETS:
        added, dropped = update(language, template)
        print(f"{language}: {added} new, {dropped} dropped, {path_of(language)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
