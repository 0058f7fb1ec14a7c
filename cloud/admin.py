"""The administrator's use-cases: orgs, users, org policy, lockouts, devices, and what an
administrator reads (jobs, audit).

Every front end calls these, never the store behind them: ``mfd admin`` parses its arguments
and prints what these return, and a web console or the MQTT worker would do the same. So each
check (does the org exist, is this an email, is the card number one a device can send) and each
audit entry is written once, here, with the transaction that goes with it.

A name that does not exist is a ``not_found`` error naming it: acting on a typo and saying it
worked is the mistake an administrator cannot see. What a card, code or password is, and the
operations on them, are cloud/directory.py's and cloud/identity.py's; throttles are
cloud/throttle.py's; devices' registration and configuration are cloud/devices.py's.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from cloud import devices, throttle
from cloud.hashing import card_hash, code_hash
from cloud.identity import check_access_code, check_language
from cloud.offline import offline_public_key
from cloud.storage.capability import implements
from cloud.storage.port import (
    ROLES,
    ClientInstall,
    CloudStore,
    GroupStore,
    Job,
    OrgSettings,
    Technician,
    User,
    new_id,
)
from protocol.errors import StoreError
from protocol.managed import GROUP_NAME

#: Who the audit log says did it, for actions taken through an admin front end.
ACTOR = "admin"
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: A display name: what the directory import takes (cloud/linking/importing.py), by every path.
#: Names end up in mails, packages and pages; a line break in one has no business there.
NAME_MAX = 128
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_display_name(name: str, what: str = "a user") -> str:
    """The name without surrounding blanks; refused when empty, past :data:`NAME_MAX`
    characters, or holding control characters (line breaks included)."""
    name = name.strip()
    if not name:
        raise StoreError(f"{what} needs a display name", code="invalid_field")
    if len(name) > NAME_MAX or _CONTROL_RE.search(name):
        raise StoreError(f"a display name is up to {NAME_MAX} characters, without line breaks "
                         "or other control characters", code="invalid_field")
    return name


# -- names that must exist


def org_ids(store: CloudStore) -> list[str]:
    with store.transaction():
        return sorted(org_id for org_id, _name in store.orgs())


def require_org(store: CloudStore, org_id: str) -> None:
    with store.transaction():
        if store.org_name(org_id) is not None:
            return
    known = ", ".join(org_ids(store))
    raise StoreError(f"no org {org_id} in this store (orgs: {known or 'none'})",
                     code="not_found")


def resolve_org(store: CloudStore, given: str | None) -> str:
    """``given`` (which must exist), or the store's only org."""
    if given:
        require_org(store, given)
        return given
    orgs = org_ids(store)
    if len(orgs) != 1:
        raise StoreError(f"this store has {len(orgs)} orgs; pass --org ORG",
                         code="config_invalid")
    return orgs[0]


def require_user(store: CloudStore, email: str) -> User:
    with store.transaction():
        user = store.user_by_email(email.strip().lower())
    if user is None:
        raise StoreError(f"no user {email}", code="not_found")
    return user


def require_device(store: CloudStore, device_id: str) -> str:
    """The device's org."""
    with store.transaction():
        org = store.device_org(device_id)
    if org is None:
        raise StoreError(f"no device {device_id}", code="not_found")
    return org


# -- orgs and users


def create_org(store: CloudStore, name: str) -> str:
    if not name.strip():
        raise StoreError("an org needs a name", code="invalid_field")
    with store.transaction():
        org_id = store.create_org(name.strip())
        store.audit(time.time(), ACTOR, "org.add", f"org:{org_id}", name.strip())
    return org_id


def add_user(store: CloudStore, org_id: str, email: str, name: str, *,
             language: str = "", role: str = "user") -> str:
    """A new user; ``language`` is their preferred language tag ("" = the copier's own),
    ``role`` "admin" makes them an administrator of the org (the admin console)."""
    require_org(store, org_id)
    if not _EMAIL_RE.fullmatch(email.strip()) or len(email) > 254:
        raise StoreError(f"{email!r} is not an email address", code="invalid_field")
    name = check_display_name(name)
    language = check_language(language)
    _check_role(role)
    with store.transaction():
        user_id = store.add_user(org_id, email, name, language=language)
        if role != "user":
            store.set_user_role(user_id, role)
        store.audit(time.time(), ACTOR, "user.add", f"user:{user_id}",
                    ", ".join(([f"language {language}"] if language else [])
                              + ([f"role {role}"] if role != "user" else [])))
    return user_id


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise StoreError(f"a role is {' or '.join(ROLES)}, not {role!r}", code="invalid_field")


def set_user_language(store: CloudStore, email: str, language: str) -> User:
    """Change a user's preferred language ("" = none, the copier's own); audited. The panel
    speaks it from the user's next sign-in. Returns the user as now stored."""
    language = check_language(language)
    user = require_user(store, email)
    if user.language == language:
        return user  # no change, no write
    with store.transaction():
        store.set_user_language(user.id, language)
        store.audit(time.time(), ACTOR, "user.language", f"user:{user.id}",
                    f"{user.language or '(none)'} -> {language or '(none)'}")
    return replace(user, language=language)


def users(store: CloudStore, org_id: str) -> list[User]:
    require_org(store, org_id)
    with store.transaction():
        return store.users(org_id)


def set_role(store: CloudStore, email: str, role: str) -> User:
    """Make a user an administrator of their org ("admin": the admin console) or take it back
    ("user"); audited. Returns the user as now stored."""
    _check_role(role)
    user = require_user(store, email)
    if user.role == role:
        return user  # no change, no write
    with store.transaction():
        store.set_user_role(user.id, role)
        store.audit(time.time(), ACTOR, "user.role", f"user:{user.id}",
                    f"{user.role} -> {role}")
    return replace(user, role=role)


# -- groups: named sets of an org's users, for a policy that chooses people by group (offline
# mode's ``offline_users = "group:NAME"``). A group exists while it has members.


def _groups(store: CloudStore) -> GroupStore:
    if not implements(store, GroupStore):
        raise StoreError("this store keeps no user groups", code="not_allowed")
    return store  # type: ignore[return-value]  # checked just above


def check_group_name(name: str) -> str:
    if not GROUP_NAME.fullmatch(name):
        raise StoreError(f"{name!r} is not a group name: 1 to 64 letters, digits, '.', '_' "
                         "or '-'", code="invalid_field")
    return name


def _members(store: CloudStore, org_id: str, emails: Sequence[str]) -> list[User]:
    """The users of ``emails``, each of ``org_id`` (one of another org is not found, as one
    that does not exist), all checked before anything is changed."""
    if not emails:
        raise StoreError("name at least one user (their email)", code="invalid_field")
    out = []
    for email in emails:
        user = require_user(store, email)
        if user.org_id != org_id:
            raise StoreError(f"no user {email} in org {org_id}", code="not_found")
        out.append(user)
    return out


def group_add(store: CloudStore, org_id: str, name: str, emails: Sequence[str]) -> list[User]:
    """Add users to the org's group ``name`` (made by its first member); one audit entry per
    user added. The users who were not members yet."""
    return _regroup(store, org_id, name, emails, "group.add",
                    lambda kept, user, now: kept.add_to_group(org_id, name, user.id, now))


def group_remove(store: CloudStore, org_id: str, name: str,
                 emails: Sequence[str]) -> list[User]:
    """Take users out of the org's group ``name``; one audit entry per user removed. The users
    who were members; a group none of them was in is ``not_found`` (a typo'd name)."""
    removed = _regroup(store, org_id, name, emails, "group.remove",
                       lambda kept, user, _now: kept.remove_from_group(org_id, name, user.id))
    if not removed:
        raise StoreError(f"none of them is in group {name} of org {org_id}", code="not_found")
    return removed


def _regroup(store: CloudStore, org_id: str, name: str, emails: Sequence[str], action: str,
             change: Callable[[GroupStore, User, float], bool]) -> list[User]:
    """Apply ``change`` to each user of ``emails`` (all checked first), in one transaction;
    each user it changed is audited as ``action`` and returned."""
    kept = _groups(store)
    check_group_name(name)
    require_org(store, org_id)
    users_ = _members(store, org_id, emails)
    changed = []
    with store.transaction():
        now = time.time()
        for user in users_:
            if change(kept, user, now):
                store.audit(now, ACTOR, action, f"user:{user.id}", f"group {name}",
                            org_id=org_id)
                changed.append(user)
    return changed


def groups(store: CloudStore, org_id: str) -> list[tuple[str, int]]:
    """(name, member count) of the org's groups, by name."""
    require_org(store, org_id)
    with store.transaction():
        return _groups(store).groups(org_id)


def group_members(store: CloudStore, org_id: str, name: str) -> list[User]:
    """The members of the org's group ``name``, by email; ``not_found`` if it has none."""
    check_group_name(name)
    require_org(store, org_id)
    with store.transaction():
        ids = _groups(store).group_members(org_id, name)
        found = [u for u in (store.user(i) for i in ids) if u is not None]
    if not found:
        raise StoreError(f"no group {name} in org {org_id}", code="not_found")
    return sorted(found, key=lambda u: u.email)


# -- org policy

#: The policy an administrator may change, by the name OrgSettings gives it.
SETTINGS = tuple(f.name for f in fields(OrgSettings))


def org_settings(store: CloudStore, org_id: str) -> OrgSettings:
    require_org(store, org_id)
    with store.transaction():
        return store.org_settings(org_id)


def change_org_settings(store: CloudStore, org_id: str, *, action: str = "org.settings",
                        **changes: Any) -> OrgSettings:
    """The org's policy with ``changes`` (names from :data:`SETTINGS`) applied, checked by
    :class:`OrgSettings` and audited; no changes, no write. Returns the policy now in force."""
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise StoreError(f"no org setting {unknown[0]}", code="config_invalid")
    require_org(store, org_id)
    with store.transaction():
        new = replace(store.org_settings(org_id), **changes)
        if changes:
            store.set_org_settings(org_id, new)
            store.audit(time.time(), ACTOR, action, f"org:{org_id}",
                        ", ".join(f"{k}={v}" for k, v in changes.items()))
    return new


def set_aop_pending(store: CloudStore, org_id: str, policy: str) -> OrgSettings:
    """Authenticate-on-Print: the job that asked its user to sign in joins the queue, or the
    user prints again."""
    return change_org_settings(store, org_id, action="org.aop_pending", aop_pending=policy)


# -- guessing lockouts


def end_sessions(store: CloudStore, email: str) -> int:
    """Sign the user out of every User Portal and admin console session (a lost laptop, a
    suspicion); audited. How many sessions were open."""
    user = require_user(store, email.strip().lower())
    with store.transaction():
        ended = store.end_portal_sessions_of(user.id)
        store.audit(time.time(), ACTOR, "portal.sessions_end", f"user:{user.id}",
                    f"{ended} session(s), by an administrator")
    return ended


def unlock(store: CloudStore, scope: str, subject: str) -> bool:
    """Lift a lockout of a ``device`` or a ``user`` (email) and forget the wrong guesses counted
    so far (audited); whether it was locked."""
    if scope == "user":
        subject = subject.strip().lower()
        require_user(store, subject)
    elif scope == "device":
        require_device(store, subject)
    else:
        raise StoreError(f"scope must be device or user, not {scope!r}", code="config_invalid")
    with store.transaction():
        now = time.time()
        locked = store.locked_until(scope, subject, now) is not None
        store.unlock(scope, subject)
        store.audit(now, ACTOR, "unlock", f"{scope}:{subject}")
    return locked


# -- devices


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device_id: str
    org_id: str
    name: str
    status: str
    #: Its engine is the emulator: released jobs are marked printed and nothing comes out.
    emulated: bool
    config_version: int
    applied: int
    refused: int
    refusal: str
    #: When it last reported its status (0: never).
    last_seen: float = 0.0
    #: Pushed (published) version of its configuration, acknowledged or not.
    pushed: int = 0


def device_rows(store: CloudStore, org_id: str | None = None) -> list[DeviceRow]:
    """Every device (the operator's view), or one org's."""
    with store.transaction():
        listed = store.devices(org_id)
        seen = {d: at for org in ([org_id] if org_id else [o for o, _ in store.orgs()])
                for d, _n, _s, at in store.org_devices(org)}
    rows = []
    for device_id, org, name, status in listed:
        c = devices.config_state(store, device_id)
        rows.append(DeviceRow(device_id, org, name, status,
                              devices.device_engine(store, device_id) == "emulator",
                              c["version"], c["applied"], c["refused"], c["refusal"],
                              seen.get(device_id, 0.0), c["pushed"]))
    return rows


@dataclass(frozen=True, slots=True)
class ConfigStored:
    version: int
    #: The previous version, if the device refused it: every version carries the whole managed
    #: configuration, so what it refused is in this one too unless it was changed or unset.
    refused_before: tuple[int, str] | None


def push_device_config(store: CloudStore, device_id: str, managed: dict[str, dict[str, Any]],
                       unset: Sequence[str] = ()) -> ConfigStored:
    """Store a new managed-configuration version for a device (checked with the device's own
    schema first); the cloud pushes it, and the device applies or refuses it."""
    if not managed and not unset:
        raise StoreError("give --set SECTION.KEY=VALUE or --unset SECTION.KEY",
                         code="config_invalid")
    version = devices.set_device_config(store, device_id, managed, time.time(),
                                        unset=tuple(unset))
    before = devices.config_state(store, device_id)
    refused = before["refused"] == version - 1 and before["refused"] > before["applied"]
    return ConfigStored(version, (version - 1, before["refusal"]) if refused else None)


# -- technicians: a badge or a code that opens a copier's diagnostics screen

#: As a device sends a card number (protocol.messages.Identify.value; cloud/directory.py checks
#: users' cards the same way): a number outside it could be stored but never matched.
_CARD_RE = re.compile(r"[!-~]{1,128}")
#: Digits in a generated technician code: typed on a keypad, and as hard to guess as the
#: longest access code a user may have.
TECHNICIAN_CODE_DIGITS = 10


@dataclass(frozen=True, slots=True)
class IssuedTechnician:
    technician: Technician
    #: The generated code, to be shown once (the store keeps only its hash); None for a badge.
    code: str | None


def add_technician(store: CloudStore, org_id: str, name: str, *, badge: str | None = None,
                   code: bool = False) -> IssuedTechnician:
    """Issue a technician's credential in ``org_id``: the badge ``badge``, or (``code``) a
    generated access code returned once. Hashed like a user's card or code; audited. A badge
    or code that is a user's already is refused: identify would find the user first."""
    require_org(store, org_id)
    name = check_display_name(name, "a technician")
    if (badge is None) == (not code):
        raise StoreError("give a technician either a badge (--badge NUMBER) or a code (--code)",
                         code="invalid_field")
    if badge is not None and not _CARD_RE.fullmatch(badge):
        # The number stays out of the message: card numbers are never shown in clear.
        raise StoreError("a card number is 1 to 128 characters without spaces, exactly as the "
                         "reader gives it (mfd reader watch shows it)", code="invalid_field")
    tech_id = new_id("tech")
    now = time.time()
    with store.transaction():
        secret = store.org_secret(org_id)
        given = None
        if badge is not None:
            kind, h = "badge", card_hash(secret, badge)
            if store.user_by_card(org_id, h) is not None:
                raise StoreError("that badge is a user's card already", code="conflict")
        else:
            kind = "code"
            while True:  # a code no user or technician of the org has (a clash is rare)
                given = _technician_code()
                h = code_hash(secret, given)
                if store.user_by_code(org_id, h) is None and \
                        store.technician_by_secret(org_id, "code", h) is None:
                    break
        store.add_technician(tech_id, org_id, name.strip(), kind, h, now)
        store.audit(now, ACTOR, "technician.add", f"technician:{tech_id}",
                    f"{kind}, org {org_id}")
        tech = store.technician(tech_id)
    assert tech is not None
    return IssuedTechnician(tech, given)


def _technician_code() -> str:
    while True:
        code = "".join(secrets.choice("0123456789") for _ in range(TECHNICIAN_CODE_DIGITS))
        try:
            return check_access_code(code)
        except StoreError:
            continue  # a repeated digit or a straight run: draw again


def technicians(store: CloudStore, org_id: str, include_revoked: bool = False
                ) -> list[Technician]:
    require_org(store, org_id)
    with store.transaction():
        return store.technicians(org_id, include_revoked)


def revoke_technician(store: CloudStore, technician_id: str) -> Technician:
    """Revoke a technician's credential (audited): its badge or code opens nothing from now
    on. Revoking one revoked already says so."""
    with store.transaction():
        tech = store.technician(technician_id)
        if tech is None:
            raise StoreError(f"no technician {technician_id}", code="not_found")
        now = time.time()
        if not store.revoke_technician(technician_id, now):
            raise StoreError(f"technician {technician_id} was revoked already",
                             code="not_found")
        store.audit(now, ACTOR, "technician.revoke", f"technician:{technician_id}")
        revoked = store.technician(technician_id)
    assert revoked is not None
    return revoked


# -- what an administrator reads


def offline_key(store: CloudStore) -> tuple[str, str]:
    """(public key, key id) of the installation's offline signing key, made on first need: what
    a device's ``[offline] cloud_key`` holds (registration writes it; a device registered
    before offline mode is given it by hand or registered again)."""
    from protocol.offline import key_id

    key = offline_public_key(store)
    return key, key_id(key)


def jobs(store: CloudStore) -> list[Job]:
    with store.transaction():
        return store.all_jobs()


def audit_log(store: CloudStore, limit: int = 50) -> list[tuple[float, str, str, str, str]]:
    if limit < 1:
        raise StoreError("the audit limit is at least 1", code="config_invalid")
    with store.transaction():
        return store.audit_log(limit)


# -- one org's administrators (the admin console): what they read and act on, in their org only
#
# Each takes the administrator's org and refuses an id of another org exactly as an id that does
# not exist ("not_found"): an administrator learns nothing of other orgs, not even that an id is
# taken. `mfd admin` keeps its operator-wide view (jobs, audit_log, device_rows without an org).

#: Job states an administrator filters by (RELEASING: released to a copier, not yet printed).
JOB_STATES = ("HELD", "RELEASING", "PRINTED", "EXPIRED", "DELETED", "PENDING_AUTH")


def org_user(store: CloudStore, org_id: str, user_id: str) -> User:
    with store.transaction():
        user = store.user(user_id)
    if user is None or user.org_id != org_id:
        raise StoreError(f"no user {user_id} in this org", code="not_found")
    return user


def org_device(store: CloudStore, org_id: str, device_id: str) -> DeviceRow:
    with store.transaction():
        org = store.device_org(device_id)
    if org != org_id:
        raise StoreError(f"no device {device_id} in this org", code="not_found")
    return next(d for d in device_rows(store, org_id) if d.device_id == device_id)


def org_technician(store: CloudStore, org_id: str, technician_id: str) -> Technician:
    with store.transaction():
        tech = store.technician(technician_id)
    if tech is None or tech.org_id != org_id:
        raise StoreError(f"no technician {technician_id} in this org", code="not_found")
    return tech


def org_client(store: CloudStore, org_id: str, client_id: str) -> ClientInstall:
    with store.transaction():
        install = store.install(client_id)
    if install is None or install.org_id != org_id:
        raise StoreError(f"no client {client_id} in this org", code="not_found")
    return install


def org_throttles(store: CloudStore, org_id: str) -> list[throttle.Throttle]:
    """The badge throttles in force on the org or one of its devices (``mfd admin throttles``
    lists every org's)."""
    with store.transaction():
        mine = {d for d, *_ in store.devices(org_id)}
    return [t for t in throttle.active(store)
            if (t.scope == "org" and t.subject == org_id) or
            (t.scope == "device" and t.subject in mine)]


def user_locked_until(store: CloudStore, user: User) -> float | None:
    """Until when the user is locked out after wrong passwords or PINs (None: not locked)."""
    with store.transaction():
        return store.locked_until("user", user.email, time.time())


def org_jobs(store: CloudStore, org_id: str, *, state: str | None = None,
             user_id: str | None = None, device_id: str | None = None,
             limit: int = 200) -> list[Job]:
    """The org's jobs, newest first: by state (:data:`JOB_STATES`), owner and device."""
    if state and state not in JOB_STATES:
        raise StoreError(f"a job state is one of {', '.join(JOB_STATES)}", code="invalid_field")
    require_org(store, org_id)
    with store.transaction():
        return store.org_jobs(org_id, state=state or None, owner_id=user_id or None,
                              device_id=device_id or None, limit=limit)


def org_audit(store: CloudStore, org_id: str, *, action: str = "", actor: str = "",
              subject: str = "", since: float | None = None, until: float | None = None,
              limit: int = 200) -> list[tuple[float, str, str, str, str]]:
    """The org's audit entries, newest first: by action (or its family: "card" is card.add,
    card.remove...), actor ("admin", "user:ID", "device:ID"), subject and time."""
    if not 1 <= limit <= 1000:
        raise StoreError("the audit limit is 1 to 1000", code="invalid_field")
    require_org(store, org_id)
    with store.transaction():
        return store.org_audit(org_id, action=action.strip(), actor=actor.strip(),
                               subject=subject.strip(), since=since, until=until, limit=limit)


def device_config_toml(store: CloudStore, device_id: str) -> tuple[int, str]:
    """(version, text): the device's managed configuration as TOML, for an editor."""
    import tomli_w

    config = devices.device_config(store, device_id)
    version = int(config.pop("version", 0))
    return version, tomli_w.dumps(config)


def replace_device_config(store: CloudStore, device_id: str, text: str) -> ConfigStored:
    """The device's whole managed configuration from an editor's TOML: what the text has is
    set, what it no longer has is unset (the device's own device.toml value again). Checked
    with the device's schema, stored and pushed as :func:`push_device_config` does."""
    import tomllib

    try:
        wanted = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StoreError(f"not TOML: {exc}", code="config_invalid") from None
    current = devices.device_config(store, device_id)
    current.pop("version", None)
    if wanted == current:
        raise StoreError("the configuration is unchanged: nothing pushed", code="config_invalid")
    unset = [section for section in current if section not in wanted]
    unset += [f"{section}.{key}" for section, values in current.items()
              if isinstance(wanted.get(section), dict)
              for key in values if key not in wanted[section]]
    return push_device_config(store, device_id, wanted, unset)
