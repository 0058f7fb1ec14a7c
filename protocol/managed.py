"""The managed configuration: the part of a device's configuration the cloud may push.

Both ends hold it to one schema: the device when a push arrives (device_app/config.py, which
also reads the same sections from device.toml) and the cloud before it stores a version
(cloud/devices.py), so an administrator's typo is refused at once instead of reaching, and
blocking, a device. It lives in the protocol because it is part of the contract between them.

Reader specs are checked by a function the caller passes (the readers package knows their
syntax; the protocol does not import it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from protocol.errors import ConfigError
from protocol.redact import redact

#: The sections the cloud may push, all of them also valid in device.toml.
MANAGED = ("readers", "policy")


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-device login, logout and release policy (pushed by the cloud with the config)."""

    card_pin: bool = False  # a badge must be followed by the user's PIN
    allow_code: bool = True  # access codes on the panel
    allow_password: bool = True  # username + password on the panel
    self_association: bool = True  # an unknown badge may be linked by its holder
    new_badge_logs_in: bool = True  # another badge logs the current user out and itself in
    logout_after_release_all: bool = False
    release_changes: bool = True  # greyscale / 2-sided / copies at release
    idle_timeout: float = 60.0
    entry_timeout: float = 30.0  # an abandoned keypad goes back to idle
    notice_timeout: float = 6.0
    page_size: int = 100
    #: The panel's language when the user's is not known: a language tag ("de", "ja", "fr-CH");
    #: "" leaves it to the device's own ``[ui] language`` (else English). A language the panel
    #: has no words for shows English.
    language: str = ""
    #: The User Portal's address ("https://print.example.org"): the idle screen then shows a
    #: QR code of ``{portal_url}/copier/{device id}``, which opens the portal's page for
    #: releasing to this copier from a phone. "" shows none.
    portal_url: str = ""
    # Offline mode (docs/offline.md): when the cloud has been unreachable for ``offline_grace``
    # seconds, the device signs people in from its signed offline bundle and prints the jobs
    # pre-delivered to it. Off by default. The rest chooses what the cloud puts in a bundle.
    offline: bool = False
    offline_grace: float = 300.0
    #: Who may sign in offline: "recent" (who signed in at this device within
    #: ``offline_recent_days``), "everyone" in the org, or "group:NAME" (the members of the
    #: org's group NAME, `mfd admin group`), the most recently active first; at most
    #: ``offline_max_users`` in every case.
    offline_users: str = "recent"
    offline_recent_days: float = 14.0
    offline_max_users: int = 200
    #: How long a bundle is valid after it is made (the device refuses it afterwards).
    offline_valid_hours: float = 72.0
    #: Pre-delivered documents (held jobs of the listed users, newest first) up to this many
    #: MiB; 0: none, so offline sign-in only shows that nothing can be printed.
    offline_documents_mb: int = 512


#: What a portal address may be: http(s), a host, an optional path; no spaces, query or
#: fragment (the device's path is appended). Short enough for a QR code a phone reads from
#: a metre away.
_PORTAL_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/-]*)?")
PORTAL_URL_MAX = 120


#: BCP 47's shape, loosely: a language, then optional subtags (region, script).
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")

#: Who an offline bundle lists (``policy.offline_users``), and how many at most (the bundle
#: format's bound, protocol/offline.py ``MAX_USERS``).
OFFLINE_USERS = ("recent", "everyone", "group:NAME")
#: A group's name (cloud/admin.py keeps groups by it): short, and safe in a key's value, a
#: command line and an audit entry.
GROUP_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_GROUP_PREFIX = "group:"


def offline_group(offline_users: str) -> str | None:
    """The group NAME of an ``offline_users`` of "group:NAME", else None."""
    if offline_users.startswith(_GROUP_PREFIX):
        return offline_users[len(_GROUP_PREFIX):]
    return None
OFFLINE_MAX_USERS = 5000

POLICY_TYPES: dict[str, type] = {f.name: type(getattr(Policy(), f.name)) for f in fields(Policy)}


def expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    """``value`` if it is a ``kind`` (an int where a float is asked, as a float), else a
    ConfigError naming ``key``. true/false is not a number, and text must be writable."""
    if isinstance(value, bool) and kind in (int, float):
        raise ConfigError(f"config key {key!r} must be a number, not true/false")
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"config key {key!r} must be {names}, got {type(value).__name__}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (possible in JSON) cannot be written to device.toml.
            raise ConfigError(f"config key {key!r} is not valid text") from None
    return value


def table(data: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    """The section ``key`` of ``data`` (empty when absent), refusing keys outside ``allowed``."""
    section = data.get(key, {})
    if not isinstance(section, dict):
        raise ConfigError(f"config key {key!r} must be a table")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"config key {key + '.' + unknown[0]!r} is not known; known: "
                          + ", ".join(sorted(allowed)))
    return section


def parse_policy(section: dict[str, Any], base: Policy) -> Policy:
    """``base`` with what ``section`` (a ``[policy]`` table) changes, each value checked."""
    values: dict[str, Any] = {}
    for name, value in section.items():
        values[name] = expect(value, POLICY_TYPES[name], f"policy.{name}")
    policy = replace(base, **values)
    for name in ("idle_timeout", "entry_timeout", "notice_timeout"):
        seconds = getattr(policy, name)
        if not 5 <= seconds <= 3600:
            raise ConfigError(f"config key 'policy.{name}' must be 5 to 3600 seconds, "
                              f"got {seconds:g}")
    if policy.language and not _LANGUAGE_TAG.fullmatch(policy.language):
        raise ConfigError("config key 'policy.language' must be a language tag such as "
                          "\"en\", \"de\" or \"fr-CH\"")
    if policy.portal_url and not (len(policy.portal_url) <= PORTAL_URL_MAX
                                  and _PORTAL_URL.fullmatch(policy.portal_url)):
        raise ConfigError("config key 'policy.portal_url' must be an http:// or https:// "
                          f"address of at most {PORTAL_URL_MAX} characters, such as "
                          "\"https://print.example.org\", without a query")
    if not 30 <= policy.offline_grace <= 86400:
        raise ConfigError("config key 'policy.offline_grace' must be 30 to 86400 seconds")
    group = offline_group(policy.offline_users)
    if group is not None:
        if not GROUP_NAME.fullmatch(group):
            raise ConfigError("config key 'policy.offline_users': a group's name is 1 to 64 "
                              "letters, digits, '.', '_' or '-' (\"group:night-shift\")")
    elif policy.offline_users not in OFFLINE_USERS:
        raise ConfigError("config key 'policy.offline_users' must be one of: "
                          + ", ".join(OFFLINE_USERS))
    if not 1 <= policy.offline_recent_days <= 365:
        raise ConfigError("config key 'policy.offline_recent_days' must be 1 to 365")
    if not 1 <= policy.offline_max_users <= OFFLINE_MAX_USERS:
        raise ConfigError("config key 'policy.offline_max_users' must be 1 to "
                          f"{OFFLINE_MAX_USERS}")
    if not 1 <= policy.offline_valid_hours <= 720:
        raise ConfigError("config key 'policy.offline_valid_hours' must be 1 to 720 hours")
    if not 0 <= policy.offline_documents_mb <= 100_000:
        raise ConfigError("config key 'policy.offline_documents_mb' must be 0 to 100000")
    if not 10 <= policy.page_size <= 500:
        raise ConfigError("config key 'policy.page_size' must be 10 to 500")
    if policy.card_pin and not policy.allow_code:
        # The PIN is checked against the user's access code, which must then exist.
        raise ConfigError("config key 'policy.card_pin' needs access codes "
                          "(policy.allow_code = true)")
    return policy


def parse_reader_specs(value: Any, check_spec: Callable[[str], object]) -> tuple[str, ...]:
    """The ``readers.specs`` list, each spec passed to ``check_spec`` (which raises
    ConfigError for a bad one; it opens nothing)."""
    specs = expect(value, list, "readers.specs")
    out = []
    for i, spec in enumerate(specs):
        expect(spec, str, f"readers.specs[{i}]")
        try:
            check_spec(spec)
        except ConfigError as exc:
            # Redacted again: this message is logged and sent to the cloud as a refusal.
            raise ConfigError(f"config key 'readers.specs[{i}]': {redact(exc.message)}"
                              ) from None
        out.append(spec)
    return tuple(out)


def check_managed(managed: dict[str, Any], check_spec: Callable[[str], object]) -> None:
    """Validate a managed configuration (``readers``, ``policy``) as a device validates it when
    pushed: ConfigError naming the first bad key."""
    extra = sorted(set(managed) - set(MANAGED))
    if extra:
        raise ConfigError(f"config key {extra[0]!r} cannot be pushed; the cloud manages "
                          + ", ".join(MANAGED))
    readers = table(managed, "readers", {"specs"})
    if "specs" in readers:
        parse_reader_specs(readers["specs"], check_spec)
    parse_policy(table(managed, "policy", set(POLICY_TYPES)), Policy())
