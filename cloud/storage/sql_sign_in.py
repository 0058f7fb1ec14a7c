"""The badge sign-in's queries (cloud/storage/sign_in.py), in SQL both backends understand;
PostgreSQL uses them (and replaces :meth:`SignInQueries.sign_in` with one statement,
cloud/storage/postgres.py). Each saves round trips to the server on the one request every
copier makes most often; SQLite, in process, has none to save and keeps the plain queries."""

from __future__ import annotations

from cloud.storage.port import Technician, User
from cloud.storage.sign_in import Budget, CardLookup, NewSession
from cloud.storage.sql_core import CoreQueries

# The throttle in force (the longer one), the card's user and the technician whose badge it is,
# side by side in one row; any may be missing. The card is read even while a throttle holds,
# but nothing of it is returned then (card_lookup), so the answer is the same for a card and a
# non-card. Named columns: PostgreSQL's one-statement sign-in reads them by name
# (cloud/storage/postgres.py); parameters: now, device, org, org, card hash, org, card hash.
CARD_LOOKUP = (
    "SELECT t.scope AS tscope, t.subject AS tsubject, t.until, u.id AS uid, "
    "u.org_id AS uorg, u.email, u.display_name, u.language, u.role, tk.id AS tid, "
    "tk.org_id AS torg, tk.name, tk.kind, tk.created_at, tk.revoked_at "
    "FROM (SELECT 1 AS one) AS one "
    "LEFT JOIN (SELECT scope, subject, until FROM throttles WHERE until > ? AND "
    "((scope='device' AND subject=?) OR (scope='org' AND subject=?)) "
    "ORDER BY until DESC LIMIT 1) AS t ON 1=1 "
    "LEFT JOIN (cards c JOIN users u ON u.id = c.user_id) "
    "ON c.org_id=? AND c.card_hash=? "
    "LEFT JOIN technicians tk ON tk.org_id=? AND tk.kind='badge' AND tk.secret_hash=? "
    "AND tk.revoked_at IS NULL")
# An unknown badge counted in one statement that creates the device's row where needed and
# answers what the count is now and when the device's unknown badges were last written.
_COUNT_UNKNOWN = (
    "INSERT INTO throttles (scope, subject, unaudited) VALUES ('device', ?, 1) "
    "ON CONFLICT (scope, subject) DO UPDATE SET unaudited = throttles.unaudited + 1 "
    "RETURNING unaudited, audited_at")


class SignInQueries(CoreQueries):
    def card_lookup(self, device_id: str, org_id: str, card_hash: str,
                    now: float) -> CardLookup:
        row = self.query_one(CARD_LOOKUP, now, device_id, org_id, org_id, card_hash, org_id,
                             card_hash)
        if row is None:  # pragma: no cover - the outer row is always there
            return CardLookup(None)
        if row[0] is not None:
            self.execute("UPDATE throttles SET refused = refused + 1 WHERE scope=? AND "
                         "subject=?", row[0], row[1])
            return CardLookup((str(row[0]), str(row[1]), float(row[2])))
        if row[3] is not None:
            return CardLookup(None, User(*row[3:9]))
        if row[9] is not None:
            return CardLookup(None, None, Technician(
                str(row[9]), str(row[10]), str(row[11]), str(row[12]), float(row[13]), None))
        return CardLookup(None)

    def unknown_card_to_audit(self, device_id: str, now: float, every: float) -> int:
        """As CoreQueries', in two statements fewer: the count is read back from the upsert
        that makes it (the row stays locked by this transaction until it ends)."""
        row = self.query_one(_COUNT_UNKNOWN, device_id)
        before = now - every
        if row is None or float(row[1]) > before:
            return 0
        return self.take_unknown_count(device_id, int(row[0]), now, before)

    def take_unknown_count(self, device_id: str, n: int, now: float, before: float) -> int:
        """Take ``n`` unknown badges of the device to write to the audit log now, if it was
        last written at ``before`` or earlier; ``n``, or 0 where another worker took them."""
        # Guarded like every change here: of two workers, one takes the count.
        taken = self.execute("UPDATE throttles SET unaudited = unaudited - ?, audited_at=? "
                             "WHERE scope='device' AND subject=? AND audited_at <= ? AND "
                             "unaudited >= ?", n, now, device_id, before, n)
        return n if taken else 0

    def sign_in(self, budget: Budget | None, session: NewSession, now: float) -> float:
        ahead = 0.0
        if budget is not None:
            ahead = self.spend_token(budget.scope, budget.subject, now, budget.interval)
            if ahead > budget.limit:
                return ahead
        self.create_session(session.token_hash, session.device_id, session.user_id,
                            session.expires_at)
        self.audit(now, f"device:{session.device_id}", "login", f"user:{session.user_id}",
                   session.method, org_id=session.org_id)
        return ahead
