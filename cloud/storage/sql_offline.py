"""The queries of offline mode (cloud/offline.py): credential verifiers, sign-ins per device,
the bundles each device was given, the installation's signing key, and a job printed offline.

A verifier is listed only while its credential exists: every read joins ``offline_verifiers``
with ``cards`` or ``access_codes`` on the credential's hash, so removing a card or replacing a
code needs no step here. Inserts that two workers may race on (a verifier, the signing key) are
``ON CONFLICT DO NOTHING``: the loser's row would be the same (a verifier) or is discarded for
the winner's (the key, read back after the insert)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from cloud.storage.port import Job
from cloud.storage.sql_base import SqlBase
from cloud.storage.sql_core import _JOB_COLS, _job

#: User ids per ``IN (...)`` list: well inside every backend's bound on parameters.
_BATCH = 500

#: A user with at least one verifier of a credential they hold now.
_HAS_VERIFIER = (
    "(EXISTS (SELECT 1 FROM cards c JOIN offline_verifiers v ON v.org_id = c.org_id "
    "AND v.kind = 'card' AND v.cred_hash = c.card_hash WHERE c.user_id = u.id) "
    "OR EXISTS (SELECT 1 FROM access_codes a JOIN offline_verifiers v ON v.org_id = a.org_id "
    "AND v.kind = 'code' AND v.cred_hash = a.code_hash WHERE a.user_id = u.id))")


def _batches(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i:i + _BATCH] for i in range(0, len(ids), _BATCH)]


class OfflineQueries(SqlBase):
    """Verifiers, sign-ins, bundles, the signing key, offline printing."""

    # -- verifiers and sign-ins (written on a sign-in's path: one statement each)
    def offline_verifier_known(self, org_id: str, kind: str, cred_hash: str) -> bool:
        return self.query_one("SELECT 1 FROM offline_verifiers WHERE org_id=? AND kind=? AND "
                              "cred_hash=?", org_id, kind, cred_hash) is not None

    def add_offline_verifier(self, org_id: str, kind: str, cred_hash: str, verifier: bytes,
                             now: float) -> None:
        self.execute("INSERT INTO offline_verifiers (org_id, kind, cred_hash, verifier, added_at) "
                     "VALUES (?,?,?,?,?) ON CONFLICT (org_id, kind, cred_hash) DO NOTHING",
                     org_id, kind, cred_hash, verifier, now)

    def purge_offline_verifiers(self, limit: int = 1000) -> int:
        """Drop up to ``limit`` verifiers whose card was removed or whose code was replaced:
        never listed any more, and a stolen store should not hold them either."""
        return self.execute(
            "DELETE FROM offline_verifiers WHERE (org_id, kind, cred_hash) IN (SELECT v.org_id, "
            "v.kind, v.cred_hash FROM offline_verifiers v WHERE (v.kind = 'card' AND NOT EXISTS "
            "(SELECT 1 FROM cards c WHERE c.org_id = v.org_id AND c.card_hash = v.cred_hash)) "
            "OR (v.kind = 'code' AND NOT EXISTS (SELECT 1 FROM access_codes a WHERE "
            "a.org_id = v.org_id AND a.code_hash = v.cred_hash)) LIMIT ?)", limit)

    def note_device_sign_in(self, device_id: str, user_id: str, now: float) -> None:
        self.execute("INSERT INTO device_sign_ins (device_id, user_id, at) VALUES (?,?,?) "
                     "ON CONFLICT (device_id, user_id) DO UPDATE SET at = excluded.at "
                     "WHERE device_sign_ins.at < excluded.at", device_id, user_id, now)

    # -- who a bundle lists
    def offline_candidates(self, org_id: str, device_id: str, since: float | None,
                           limit: int) -> list[tuple[str, str, str]]:
        """(user_id, display_name, language) of the org's users who hold a credential with a
        verifier, most recently active first: those who signed in at ``device_id`` since
        ``since``, or (``since`` None) everyone, by their last sign-in anywhere."""
        if since is not None:
            rows = self.query_all(
                "SELECT u.id, u.display_name, u.language FROM device_sign_ins s "  # noqa: S608
                "JOIN users u ON u.id = s.user_id WHERE s.device_id=? AND s.at >= ? "
                f"AND u.org_id=? AND {_HAS_VERIFIER} ORDER BY s.at DESC, u.id LIMIT ?",
                device_id, since, org_id, limit)
        else:
            rows = self.query_all(
                "SELECT u.id, u.display_name, u.language FROM users u WHERE u.org_id=? "  # noqa: S608
                f"AND {_HAS_VERIFIER} ORDER BY COALESCE((SELECT max(s.at) FROM device_sign_ins "
                "s WHERE s.user_id = u.id), 0) DESC, u.id LIMIT ?", org_id, limit)
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def offline_verifiers(self, org_id: str, user_ids: Sequence[str]
                          ) -> list[tuple[str, str, bytes]]:
        """(user_id, kind, verifier) of the credentials the users hold now, cards first (oldest
        first), then codes."""
        out: list[tuple[str, str, bytes]] = []
        for batch in _batches(user_ids):
            marks = ",".join("?" * len(batch))
            rows = self.query_all(
                "SELECT c.user_id, 'card', v.verifier, c.added_at FROM cards c "  # noqa: S608
                "JOIN offline_verifiers v ON v.org_id = c.org_id AND v.kind = 'card' "
                f"AND v.cred_hash = c.card_hash WHERE c.org_id=? AND c.user_id IN ({marks}) "
                "UNION ALL SELECT a.user_id, 'code', v.verifier, 0 FROM access_codes a "
                "JOIN offline_verifiers v ON v.org_id = a.org_id AND v.kind = 'code' "
                f"AND v.cred_hash = a.code_hash WHERE a.org_id=? AND a.user_id IN ({marks})",
                org_id, *batch, org_id, *batch)
            rows.sort(key=lambda r: (str(r[1]), float(r[3])))
            out.extend((str(u), str(k), bytes(v)) for u, k, v, _at in rows)
        return out

    def offline_jobs(self, user_ids: Sequence[str], now: float, limit: int) -> list[Job]:
        """The users' held jobs not past their hold time, newest first, at most ``limit``."""
        jobs: list[Job] = []
        for batch in _batches(user_ids):
            marks = ",".join("?" * len(batch))
            jobs.extend(_job(r) for r in self.query_all(
                f"SELECT {_JOB_COLS} FROM jobs WHERE state='HELD' AND expires_at > ? "  # noqa: S608
                f"AND owner_id IN ({marks}) ORDER BY submitted_at DESC, id LIMIT ?",
                now, *batch, limit))
        jobs.sort(key=lambda j: (-j.submitted_at, j.id))
        return jobs[:limit]

    # -- the bundles each device was given
    def offline_last_seq(self, device_id: str) -> int | None:
        """The sequence number of the device's newest bundle still kept."""
        row = self.query_one("SELECT max(seq) FROM offline_issued WHERE device_id=?", device_id)
        return int(row[0]) if row and row[0] is not None else None

    def offline_bundle_jobs(self, device_id: str, seq: int | None,
                            now: float) -> frozenset[str]:
        """The job ids of the device's bundle ``seq`` (while kept, expired or not: a report of
        what was printed before it expired) and of every bundle of the device not expired at
        ``now`` (a device may print from one and report under the next)."""
        ids: set[str] = set()
        for (text,) in self.query_all("SELECT jobs FROM offline_issued WHERE device_id=? AND "
                                      "(seq=? OR expires_at > ?)", device_id,
                                      -1 if seq is None else seq, now):
            if text:
                ids.update(str(i) for i in json.loads(str(text)))
        return frozenset(ids)

    def record_offline_bundle(self, device_id: str, seq: int, now: float, expires_at: float,
                              job_ids: Sequence[str]) -> None:
        """A bundle made for the device (given to it or not: an answer may be lost; it is
        checked against until it expires)."""
        self.execute("INSERT INTO offline_issued (device_id, seq, issued_at, expires_at, jobs) "
                     "VALUES (?,?,?,?,?) ON CONFLICT (device_id, seq) DO NOTHING", device_id,
                     seq, now, expires_at, json.dumps(list(job_ids)))

    def purge_offline_bundles(self, before: float) -> int:
        """Drop the bundles that expired before ``before``, except each device's newest (its
        sequence number is where the next one starts)."""
        return self.execute(
            "DELETE FROM offline_issued WHERE expires_at < ? AND seq < (SELECT max(o.seq) FROM "
            "offline_issued o WHERE o.device_id = offline_issued.device_id)", before)

    # -- the installation's signing key
    def offline_signing_key(self) -> bytes | None:
        row = self.query_one("SELECT private_key FROM offline_keys WHERE id = 1")
        return bytes(row[0]) if row else None

    def add_offline_signing_key(self, private_key: bytes, now: float) -> bytes:
        """Keep ``private_key`` unless a key exists (another worker's, maybe just now); the
        key kept either way."""
        self.execute("INSERT INTO offline_keys (id, private_key, created_at) VALUES (1,?,?) "
                     "ON CONFLICT (id) DO NOTHING", private_key, now)
        kept = self.offline_signing_key()
        assert kept is not None  # inserted, or there already
        return kept

    # -- a job printed offline
    def add_offline_release(self, release_id: str, device_id: str, user_id: str,
                            now: float) -> str:
        """The release row of an offline release (its id the device's); the device that owns
        that id, this one unless another device used it first."""
        self.execute("INSERT INTO releases (id, device_id, user_id, created_at, options) "
                     "VALUES (?,?,?,?,'offline') ON CONFLICT (id) DO NOTHING", release_id,
                     device_id, user_id, now)
        row = self.query_one("SELECT device_id FROM releases WHERE id=?", release_id)
        return str(row[0]) if row else ""

    def set_printed_offline(self, job_id: str, release_id: str, device_id: str,
                            now: float) -> bool:
        """HELD to PRINTED in an offline release; False if the job was not HELD any more."""
        won = self.execute("UPDATE jobs SET state='PRINTED', release_id=?, device_id=?, "
                           "updated_at=? WHERE id=? AND state='HELD'", release_id, device_id,
                           now, job_id) > 0
        if won:
            self.execute("DELETE FROM documents WHERE job_id=?", job_id)
        return won
