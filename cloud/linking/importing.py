"""User import from CSV or TSV (email, display name, card number, access code, language): every
bad row reported with its line, nothing imported unless every row is good. The language column
came later: a file of four columns (or fewer) imports as it always did."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from cloud.hashing import card_hash, code_hash
from cloud.identity import check_access_code, check_language
from cloud.linking.base import _CONTROL_RE, _EMAIL_RE, LinkCode, LinkingBase, LinkingError
from cloud.linking.values import ImportReport
from protocol.errors import StoreError


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    name: str
    card: str
    code: str
    language: str = ""
    errors: list[str] = field(default_factory=list)
    #: Fields well formed (and not repeated in the file): worth asking the store about.
    email_ok: bool = False
    card_ok: bool = False
    code_ok: bool = False


class DirectoryImport(LinkingBase):
    """Users imported in bulk, all or nothing."""

    def import_users(self, org_id: str, text: str, *, name: str = "") -> ImportReport:
        """Users from CSV or TSV (email, display name, optional card number, optional access
        code, optional language tag), all or nothing: every bad row is reported with its line
        number and nothing is imported unless every row is good."""
        rows = _parse_import(text, tab=name.lower().endswith(".tsv"))
        _check_rows(rows)
        now = self.clock()
        with self._work():
            secret = self.store.org_secret(org_id)
            # What the store knows is checked in the same pass as the rows' form, so one try
            # shows every error of every row (a taken email beside a bad card two lines down).
            for r in rows:
                self._check_against_store(org_id, secret, r)
            bad = _bad_rows(rows)
            if bad:
                error = LinkingError(LinkCode.IMPORT_INVALID, _import_message(name, bad))
                error.rows = bad
                raise error
            for r in rows:
                user_id = self.store.add_user(org_id, r.email, r.name, language=r.language)
                if r.card:
                    self.store.add_card(org_id, card_hash(secret, r.card), user_id, now)
                if r.code:
                    self.store.set_access_code(org_id, code_hash(secret, r.code), user_id)
            report = ImportReport(len(rows), sum(1 for r in rows if r.card),
                                  sum(1 for r in rows if r.code))
            self.store.audit(now, "admin", "users.import", f"org:{org_id}",
                             f"{name or 'import'}: {report.users} user(s), {report.cards} "
                             f"card(s), {report.codes} code(s)")
        return report

    def _check_against_store(self, org_id: str, secret: bytes, r: _Row) -> None:
        """A row whose fields are well formed, against who holds what already (a field that is
        malformed has its error already; asking the store about it would only repeat it)."""
        existing = self.store.user_by_email(r.email) if r.email_ok else None
        if existing is not None:
            # Emails are unique across orgs; whose it is elsewhere is not this admin's to learn.
            r.errors.append(f"user {r.email} exists already" if existing.org_id == org_id
                            else "this email cannot be used; choose another")
        if r.card_ok:
            h = card_hash(secret, r.card)
            if self.store.user_by_card(org_id, h):
                r.errors.append("that card belongs to another user")
            elif self.store.technician_by_secret(org_id, "badge", h):
                # A user's card is looked up first: the technician's badge would stop
                # opening the diagnostics without a word.
                r.errors.append("that card is a technician's badge")
        if r.code_ok:
            h = code_hash(secret, r.code)
            if (self.store.user_by_code(org_id, h)
                    or self.store.technician_by_secret(org_id, "code", h)):
                r.errors.append("that access code is taken")


def _parse_import(text: str, *, tab: bool) -> list[_Row]:
    if text.startswith("\ufeff"):  # a spreadsheet's byte order mark
        text = text[1:]
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = "\t" if tab or "\t" in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[_Row] = []
    header_seen = False
    for cells in reader:
        line = reader.line_num
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not header_seen and not rows and cells[0].lower() in ("email", "e-mail"):
            header_seen = True
            continue
        padded = [*cells, "", "", "", "", ""]
        row = _Row(line, padded[0], padded[1], padded[2], padded[3], padded[4])
        if len(cells) > 5 and any(cells[5:]):
            row.errors.append(f"{len(cells)} columns; expected email, display name, card "
                              "number, access code, language")
        rows.append(row)
    return rows


def _check_rows(rows: list[_Row]) -> None:
    seen: dict[str, int] = {}
    cards: dict[str, int] = {}
    codes: dict[str, int] = {}
    for r in rows:
        r.email = r.email.lower()
        if not _EMAIL_RE.fullmatch(r.email) or len(r.email) > 254:
            r.errors.append(f"{r.email!r} is not an email address")
        elif r.email in seen:
            r.errors.append(f"{r.email} is on line {seen[r.email]} already")
        else:
            seen[r.email] = r.line
            r.email_ok = True
        if not r.name or len(r.name) > 128 or _CONTROL_RE.search(r.name):
            r.errors.append("the display name is missing or longer than 128 characters")
        if r.card:
            if len(r.card) > 64 or not r.card.isprintable() or " " in r.card:
                r.errors.append("the card number must be up to 64 characters without spaces")
            elif r.card in cards:
                r.errors.append(f"the card is on line {cards[r.card]} already")
            else:
                cards[r.card] = r.line
                r.card_ok = True
        if r.code:
            try:
                check_access_code(r.code)
            except StoreError as exc:
                r.errors.append(exc.message)
            else:
                if r.code in codes:
                    r.errors.append(f"the access code is on line {codes[r.code]} already")
                else:
                    r.code_ok = True
                codes.setdefault(r.code, r.line)
        if r.language:
            try:
                r.language = check_language(r.language)
            except StoreError:
                # Not quoted: in a file whose columns slipped, column 5 may hold a card number
                # or a code, and this message is shown and logged.
                r.errors.append("column 5 (language) is not a language tag such as de, ja "
                                "or fr-CH")
    if not rows:
        raise LinkingError(LinkCode.IMPORT_INVALID, "the file has no users")


def _bad_rows(rows: list[_Row]) -> list[str]:
    return [f"line {r.line}: {', and '.join(r.errors)}" for r in rows if r.errors]


def _import_message(name: str, bad: list[str]) -> str:
    # One line (the CLI's errors are one line each); rows are set apart by " | ". The error's
    # ``rows`` holds every row, for a page that lists them all.
    shown = bad[:20] + ([f"... and {len(bad) - 20} more"] if len(bad) > 20 else [])
    return f"{name or 'the import'}: nothing imported; fix these rows: " + " | ".join(shown)
