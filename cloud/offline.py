"""Offline mode, the cloud's side: verifiers of cards and codes, the installation's signing key,
each device's signed bundle and the sealed documents it pre-fetches (protocol/offline.py has
the format and the cryptography; docs/offline.md the whole flow).

Theory of operation
-------------------
* **Verifiers.** A card number or an access code is in clear on the cloud only while a request
  carries it (a sign-in, a badge linked, an administrator setting one). Then, and only if the
  store has none for that credential yet (one scrypt, ~15-30 ms, not on every sign-in),
  :func:`remember` keeps ``protocol.offline.verifier`` of it under the org's offline salt,
  keyed by the credential's own hash (the card's, the code's). The salt is derived from the
  org's secret (nothing more to store); a bundle lists a verifier only while its credential
  exists, so a removed card or a replaced code drops out without a step here.
* **The key.** One Ed25519 key per installation, made on first need and kept in the store (so
  every worker signs with it and a restart keeps it); devices get the public half when they
  register (cloud/devices.py) and check every bundle against it.
* **Bundles** (``offline.sync``): refused unless the device's managed policy turns offline
  mode on. Users by the policy (who signed in here lately, everyone, or a group's members;
  the most recently active first, at most ``offline_max_users``), each with lookup entries of
  their verifiers under a fresh list key and their user key wrapped under each; the held jobs
  of those users, newest first, within ``offline_documents_mb``; a sequence number that only
  grows. The answer must fit one MQTT response: users, then jobs, are added while they fit.
* **Sealed documents** (``offline.document``): a chunk of a job of one of the device's unexpired
  bundles that is still HELD, sealed under the owner's user key for this device; only a device that
  was shown the owner's card or code can open it.

What the device did offline comes back in ``offline.report`` (cloud/offline_report.py). Every
function runs inside the service's transaction (cloud/service.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.refusal import Refused, shown
from cloud.storage.capability import implements
from cloud.storage.durability import commit_durably
from cloud.storage.port import GroupStore, Job, OfflineStore, Store
from protocol import messages as m
from protocol import offline as po
from protocol.errors import ConfigError, ErrorCode, StoreError
from protocol.managed import Policy, offline_group, parse_policy

if TYPE_CHECKING:
    from cloud.identity import Identity

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: What a bundle's body may take: the answer carries it in base64 (4/3), with the signature
#: and the envelope in the rest.
BODY_BUDGET = (m.MAX_RESPONSE_BYTES - 4096) * 3 // 4
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Stores(Store, OfflineStore, Protocol):
    """A store with offline mode: the port's operations and offline mode's."""


def with_offline(store: object) -> Stores | None:
    """``store`` if it keeps what offline mode needs, else None (a store without offline
    mode: sign-ins record nothing for it, and its devices are told ``not_allowed``)."""
    return cast(Stores, store) if implements(store, OfflineStore) else None


# --------------------------------------------------------------------------- verifiers


def org_salt(org_secret: bytes) -> bytes:
    """The org's offline salt: derived from its secret, so nothing more is stored, and the
    same for every worker and every bundle of the org."""
    return hmac.new(org_secret, b"offline-salt", hashlib.sha256).digest()[:16]


def remember(store: OfflineStore, org_secret: bytes, org_id: str, kind: str, cred_hash: str,
             value: str, now: float, lately: Lately | None = None) -> bool:
    """Keep the verifier of a card number (``kind`` "card") or an access code ("code") that is
    in clear now, under the credential's hash; True if it was computed (it was missing).
    ``lately``: a sign-in's memory of verifiers this process found already, so a badge
    tapped again does not ask the store again."""
    key = (org_id, kind, cred_hash)
    if lately is not None and lately.seen(key):
        return False
    if store.offline_verifier_known(org_id, kind, cred_hash):
        if lately is not None:
            lately.note(key)  # read, so committed: safe to remember
        return False
    store.add_offline_verifier(org_id, kind, cred_hash,
                               po.verifier(org_salt(org_secret), kind, value), now)
    return True


class Lately:
    """What this process saw in the store within the last :attr:`ttl` seconds (a verifier that
    exists, a sign-in recorded), so that the sign-in path, which is the cloud's hottest, adds
    no query for it on the next tap. An entry is trusted for minutes only: a verifier purged
    since (its card removed) is recorded again at most that much later, and "recent" is
    counted in days."""

    def __init__(self, ttl: float = 600.0, size: int = 100_000) -> None:
        self.ttl, self.size = ttl, size
        self._at: dict[tuple[str, ...], float] = {}

    def seen(self, key: tuple[str, ...]) -> bool:
        at = self._at.get(key)
        return at is not None and 0 <= time.monotonic() - at < self.ttl

    def note(self, key: tuple[str, ...]) -> None:
        if len(self._at) >= self.size:
            self._at.clear()
        self._at[key] = time.monotonic()


def note_sign_in(store: OfflineStore, device_id: str, user_id: str, now: float,
                 lately: Lately | None = None) -> None:
    """"``user_id`` signed in at ``device_id`` at ``now``", for the "recent" policy; skipped
    where this process recorded it minutes ago."""
    key = ("sign-in", device_id, user_id)
    if lately is not None and lately.seen(key):
        return
    store.note_device_sign_in(device_id, user_id, now)
    if lately is not None:
        lately.note(key)


# --------------------------------------------------------------------------- the key


def signing_key(store: OfflineStore, now: float) -> Ed25519PrivateKey:
    """The installation's signing key, made (and committed durably: a device provisioned with
    its public half must never see another) on first need."""
    raw = store.offline_signing_key()
    if raw is None:
        commit_durably(store)
        raw = store.add_offline_signing_key(po.private_key_bytes(po.new_signing_key()), now)
        log.info("offline signing key created (%s)",
                 po.key_id(po.public_key_text(po.load_private_key(raw))))
    return po.load_private_key(raw)


def offline_public_key(store: object) -> str:
    """The public key devices check bundles with (``ed25519:...``), made on first need; ""
    from a store without offline mode."""
    offline = with_offline(store)
    if offline is None:
        return ""
    with offline.transaction():
        return po.public_key_text(signing_key(offline, time.time()))


# --------------------------------------------------------------------------- policy


def device_policy(store: OfflineStore, device_id: str) -> Policy:
    """The device's policy as the cloud manages it: its managed configuration's ``policy``
    section over the defaults (the device's own file may say more; offline mode is decided
    here, where the bundle is made)."""
    row = store.device_config_text(device_id)
    section: Any = json.loads(row[1]).get("policy", {}) if row else {}
    if not isinstance(section, dict):
        return Policy()
    try:
        return parse_policy(section, Policy())
    except ConfigError:  # stored versions are checked first; one from an older release
        log.warning("device %s has a managed policy this release refuses; offline mode off",
                    device_id)
        return Policy()


def _require_offline(store: OfflineStore, device_id: str) -> Policy:
    policy = device_policy(store, device_id)
    if not policy.offline:
        raise Refused(ErrorCode.NOT_ALLOWED, "offline mode is off for this copier (its "
                      "policy's offline key)", "type")
    return policy


# --------------------------------------------------------------------------- bundles


class Offline:
    """The device's offline requests, over the storage port."""

    def __init__(self, store: Store, identity: Identity, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = with_offline(store)
        self.identity = identity
        self.clock = clock
        self._key: Ed25519PrivateKey | None = None

    @property
    def store(self) -> Stores:
        if self._store is None:
            raise Refused(ErrorCode.NOT_ALLOWED, "this print service keeps no offline mode",
                          "type")
        return self._store

    def _signing_key(self, now: float) -> Ed25519PrivateKey:
        # Never changes once made: read once per process.
        if self._key is None:
            self._key = signing_key(self.store, now)
        return self._key

    def sync(self, device_id: str, req: m.OfflineSync) -> m.OfflineBundle:
        org_id = self.identity.org_of(device_id)
        policy = _require_offline(self.store, device_id)
        now = self.clock()
        key = self._signing_key(now)
        secret = self.identity.org_secret(org_id)
        seq = max((self.store.offline_last_seq(device_id) or 0) + 1, int(now * 1000))
        base = po.Bundle(device_id=device_id, org_id=org_id, seq=seq, issued_at=now,
                         expires_at=now + policy.offline_valid_hours * 3600,
                         salt=org_salt(secret), n=po.SCRYPT_N,
                         list_key=secrets.token_bytes(32), users=(), jobs=())
        users = self._users(base, policy, secret, now)
        bundle = replace(base, users=tuple(users))
        jobs = self._jobs(bundle, policy, now)
        bundle = replace(bundle, jobs=tuple(jobs))
        body = po.encode_bundle(bundle)
        answer = m.OfflineBundle(body=body, signature=po.sign(key, body),
                                 key_id=po.key_id(po.public_key_text(key)))
        # The exact measure: trim from the end should the estimate have been short.
        while len(m.encode_result(answer, req.TYPE)) > m.MAX_RESPONSE_BYTES:
            bundle = (replace(bundle, jobs=bundle.jobs[:-1]) if bundle.jobs else
                      replace(bundle, users=bundle.users[:-1]))
            body = po.encode_bundle(bundle)
            answer = replace(answer, body=body, signature=po.sign(key, body))
        if bundle.jobs:
            # What the device may print offline is what its report is checked against: lost
            # in a crash, a job printed from this bundle could be printed again. Durable then.
            commit_durably(self.store)
        # Every bundle made, given or not (the answer may be lost, the device may refuse it and
        # go on with an older one): a report names the one it was written under.
        self.store.record_offline_bundle(device_id, seq, now, bundle.expires_at,
                                         [j.job_id for j in bundle.jobs])
        log.debug("offline bundle %d for device %s: %d user(s), %d job(s); the device held %d",
                 seq, device_id, len(bundle.users), len(bundle.jobs), req.seq)
        return answer

    def _users(self, base: po.Bundle, policy: Policy, secret: bytes,
               now: float) -> list[po.OfflineUser]:
        since = (now - policy.offline_recent_days * 86400
                 if policy.offline_users == "recent" else None)
        limit = max(0, min(policy.offline_max_users, po.MAX_USERS))
        group = offline_group(policy.offline_users)
        if group is None:
            found = self.store.offline_candidates(base.org_id, base.device_id, since, limit)
        elif implements(self.store, GroupStore):
            found = cast(GroupStore, self.store).group_offline_candidates(base.org_id, group,
                                                                          limit)
        else:
            found = []  # a store without groups: the group has nobody in it
        candidates = [c for c in found if _ID.fullmatch(c[0])]
        creds: dict[str, list[tuple[str, bytes]]] = {}
        for user_id, kind, verifier in self.store.offline_verifiers(
                base.org_id, [c[0] for c in candidates]):
            creds.setdefault(user_id, []).append((kind, verifier))
        budget = BODY_BUDGET - len(po.encode_bundle(base))
        users = []
        for user_id, name, language in candidates:
            user = self._user(base, secret, user_id, name, language, creds.get(user_id, []))
            if user is None:
                continue
            cost = _cost(base, user)
            if cost > budget:
                break
            budget -= cost
            users.append(user)
        return users

    def _user(self, base: po.Bundle, secret: bytes, user_id: str, name: str, language: str,
              creds: Sequence[tuple[str, bytes]]) -> po.OfflineUser | None:
        """A user's entry: lookup entries of their cards and code, their user key for this
        device wrapped under each; None without any."""
        user_key = po.user_key(secret, base.device_id, user_id)
        cards: list[str] = []
        code: str | None = None
        wraps: dict[str, bytes] = {}
        for kind, verifier in creds:
            entry = po.lookup(base.list_key, verifier)
            if len(wraps) >= po.MAX_CREDENTIALS or entry in wraps:
                continue
            if kind == "card":
                cards.append(entry)
            elif code is None:
                code = entry
            else:
                continue
            wraps[entry] = po.wrap(verifier, user_key, secrets.token_bytes(12))
        if not wraps:
            return None
        return po.OfflineUser(user_id=user_id, name=shown(name)[:128],
                              language=language if m.is_language_tag(language)
                              and len(language) <= 35 else "",
                              cards=tuple(cards), code=code, wraps=wraps)

    def _jobs(self, bundle: po.Bundle, policy: Policy, now: float) -> list[po.OfflineJob]:
        """The listed users' held jobs, newest first, within the documents' budget and what
        is left of the answer's."""
        documents = policy.offline_documents_mb * MIB
        if documents <= 0 or not bundle.users:
            return []
        budget = BODY_BUDGET - len(po.encode_bundle(bundle))
        jobs = []
        for job in self.store.offline_jobs([u.user_id for u in bundle.users], now,
                                           po.MAX_JOBS):
            entry = _offline_job(job)
            if entry is None or job.size > documents:
                continue
            cost = _cost(bundle, entry)
            if cost > budget:
                break
            budget -= cost
            documents -= job.size
            jobs.append(entry)
        return jobs

    # ------------------------------------------------------------------ sealed documents

    def document(self, device_id: str, req: m.FetchOffline) -> m.DocumentChunk:
        org_id = self.identity.org_of(device_id)
        _require_offline(self.store, device_id)
        if req.job_id not in self.store.offline_bundle_jobs(device_id, None, self.clock()):
            raise Refused(ErrorCode.JOB_NOT_FOUND, f"job {req.job_id} is not in this copier's "
                          "offline bundle", "job_id")
        found = self.store.jobs([req.job_id])
        job = found[0] if found else None
        if job is None or job.owner_id is None or job.state != "HELD":
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {req.job_id} is no longer waiting "
                          "(printed, deleted or expired)", "job_id")
        try:
            span = po.chunk_span(req.offset, job.size)
        except po.OfflineError as exc:
            raise Refused(ErrorCode.INVALID_FIELD, exc.message, "offset") from None
        try:
            data = self.store.document(job.id, req.offset, span) if span else b""
        except StoreError as exc:
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id}: {exc.message}",
                          "job_id") from None
        if len(data) != span:
            raise Refused(ErrorCode.JOB_NOT_HELD, f"job {job.id}'s document is not all there",
                          "job_id")
        key = po.user_key(self.identity.org_secret(org_id), device_id, job.owner_id)
        return m.DocumentChunk(job_id=job.id, offset=req.offset, total=job.size,
                               data=po.seal_chunk(key, job.id, req.offset, job.size, data,
                                                   digest=job.sha256))


def _cost(bundle: po.Bundle, item: po.OfflineUser | po.OfflineJob) -> int:
    """Bytes ``item`` adds to ``bundle``'s body (its JSON, and a comma)."""
    if isinstance(item, po.OfflineUser):
        more = replace(bundle, users=(item,), jobs=())
        less = replace(bundle, users=(), jobs=())
    else:
        owner = po.OfflineUser(item.user_id, "", "", (), None)
        more = replace(bundle, users=(owner,), jobs=(item,))
        less = replace(bundle, users=(owner,), jobs=())
    return len(po.encode_bundle(more)) - len(po.encode_bundle(less)) + 1


def _offline_job(job: Job) -> po.OfflineJob | None:
    """A held job as a bundle lists it; None for one the format cannot carry (an id or a
    digest written into the store by hand)."""
    if job.owner_id is None or not _ID.fullmatch(job.id) or not _ID.fullmatch(job.owner_id) \
            or not _HEX64.fullmatch(job.sha256) or not 0 <= job.submitted_at < 2**40:
        return None
    return po.OfflineJob(job_id=job.id, user_id=job.owner_id, name=shown(job.name)[:256],
                         pages=max(0, job.pages), color=job.color, duplex=job.duplex,
                         copies=min(max(1, job.copies), 999), size=job.size, sha256=job.sha256,
                         submitted_at=job.submitted_at)
