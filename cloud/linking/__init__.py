"""Client linking: which person is behind every print job.

Theory of operation
-------------------
A print client (the printer a workstation's client adds, the Chrome extension on a Chromebook,
the mobile app) is a *client install*: one row per seat = (org, kind, machine, OS user), holding
the SHA-256 of the client token the install was given when it registered. The token lives in
that OS user's profile, which is why an install belongs to one OS user on one machine: another
OS user on the same computer has no token and registers an install of their own. Registering a
seat again replaces the seat's install (its token stops working), so a seat has one install.

An install is *linked* when it has a user. A job's owner is the user of the install found by
the token's hash -- never a field of the request -- so holding a token is the only way to print
as someone, and a token prints only as its own user.

How an install gets its user (the seed's methods, docs/client-linking.md shows each one):

* a *personalised installer token* (the link in a Classic Invitation email; "Set up my devices"
  in the User Portal, reached through a User Portal invitation or the org's share link): the
  install is linked the moment it registers;
* the org-wide *anonymous installer token* (bulk deployment with an MDM tool): the install
  registers unlinked. Its first job is stored PENDING_AUTH and answered with a sign-in URL that
  carries a one-time auth-request token (Authenticate-on-Print). The user signs in to the portal
  and confirms; the install is linked and its pending jobs join the user's queue, or are
  discarded and the user is asked to print again (``OrgSettings.aop_pending``);
* a Chromebook's extension registers like a computer, its extension install id as the machine;
* the mobile app signs in with email + password, or with a one-time linking code the user makes
  in the portal (or finds in a Classic Invitation); it registers as a linked install of kind
  ``mobile`` whose token is the app's *user token*.

Secrets: every token is random (cloud/hashing.py) and stored only as its SHA-256; it is shown
once, when issued. Tokens carry a short prefix (``mfi_`` installer, ``mfc_`` client, ``mfu_`` user,
``mfs_`` portal session, ``mfa_`` auth request, ``mfv_`` invitation) so a leaked one is
recognisable by secret scanners. Links put tokens in the URL *fragment*, which browsers never
send to a server, so tokens stay out of access logs. The share link is not stored at all: it is
an HMAC under the org's secret, so the admin can print it again at any time and rotate it.

Guessing: a wrong password counts against the account (scope ``user``, shared with the copier's
username + password login, so both channels draw on one budget) and against the caller's address
(scope ``portal-addr``); a wrong linking code against the address. Past the limit the scope is
locked, exactly as cloud/identity.py does at the copier.

Transactions: each public method is one store transaction. A refusal rolls its transaction back;
its audit entry and any counted guess are then written in a transaction of their own, so a
refusal leaves a trace without leaving half of its work. Password hashes (scrypt, tens of ms) are
checked outside any transaction: on SQLite a transaction holds the write lock the copiers'
requests need too.

Layout: one module per flow, on :class:`~cloud.linking.base.LinkingBase` and one redemption
helper for one-time secrets (cloud/linking/redeem.py): invitations.py, signin.py (portal
sign-in), clients.py (client registration), intake.py (job intake), aop.py
(Authenticate-on-Print), mobile.py, importing.py, credentials.py (cards and codes). The tables
and their SQL are the storage port's (cloud/storage/).
"""

from __future__ import annotations

from cloud.linking.aop import AuthenticateOnPrint
from cloud.linking.base import (
    ADDR_SCOPE,
    ADDRESS_MAX_FAILURES,
    AOP_TTL,
    BULK_TTL,
    CLASSIC_TTL,
    DAY,
    DEFAULT_PORTAL_URL,
    DEFAULT_QUEUE,
    KINDS,
    LINKING_CODE_TTL,
    MAX_DOCUMENT,
    PORTAL_INVITE_TTL,
    PORTAL_SESSION_TTL,
    SETUP_TTL,
    USER_SCOPE,
    LinkCode,
    LinkingError,
    normalize_code,
)
from cloud.linking.credentials import CardAdmin
from cloud.linking.importing import DirectoryImport
from cloud.linking.intake import JobIntake
from cloud.linking.invitations import Invitations
from cloud.linking.mobile import Mobile
from cloud.linking.portal_extra import PortalExtra
from cloud.linking.sso import SingleSignOn
from cloud.linking.values import (
    AopOutcome,
    AuthRequest,
    ClientState,
    ImportReport,
    Invitation,
    Issued,
    PortalSession,
    Registered,
    Submitted,
)
from cloud.storage.port import ClientInstall

__all__ = [
    "ADDRESS_MAX_FAILURES", "ADDR_SCOPE", "AOP_TTL", "BULK_TTL", "CLASSIC_TTL", "DAY",
    "DEFAULT_PORTAL_URL", "DEFAULT_QUEUE", "KINDS", "LINKING_CODE_TTL", "MAX_DOCUMENT",
    "PORTAL_INVITE_TTL", "PORTAL_SESSION_TTL", "SETUP_TTL", "USER_SCOPE", "AopOutcome",
    "AuthRequest", "ClientInstall", "ClientState", "ImportReport", "Invitation", "Issued",
    "LinkCode", "Linking", "LinkingError", "PortalSession", "Registered", "Submitted",
    "normalize_code",
]


class Linking(Invitations, AuthenticateOnPrint, Mobile, JobIntake, DirectoryImport, CardAdmin,
              SingleSignOn, PortalExtra):
    """Client linking over a :class:`~cloud.storage.port.CloudStore`: every flow, one object
    (the portal, the CLI and tests hold one). Each public method is one store transaction."""
