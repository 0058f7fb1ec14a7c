"""Sending mail from the pages: invitations (admin console), the org's share link, a linking
code for the mobile app (User Portal). Pages call these after the use-case has issued what the
mail carries.

Without SMTP settings (``WebSettings.smtp`` is None) every send raises :class:`MailNotSetUp`,
an MfdError that says so: a page that wants to fall back (show the link for the administrator to
pass on by hand) can ask :func:`mailer` first, or catch that one error. Silently dropping the
mail was the alternative, and it would leave an administrator believing an invitation went out.
"""

from __future__ import annotations

from fastapi import Request

from cloud.linking.values import Invitation, Issued
from cloud.mail import (
    Mailer,
    SmtpMailer,
    invitation_message,
    linking_code_message,
    share_link_message,
)
from cloud.storage.port import User
from cloud.web import context as web
from protocol.errors import MfdError


class MailNotSetUp(MfdError):
    code = "not_enabled"

    def __init__(self) -> None:
        super().__init__("mail is not set up: this portal has no SMTP server configured, so "
                         "nothing was sent; an administrator sets the SMTP host, port and sender "
                         "(docs/sso-and-mail.md)")


def mailer(request: Request) -> Mailer | None:
    """The app's mailer, or None when no SMTP server is configured."""
    smtp = web.settings(request).smtp
    return SmtpMailer(smtp) if smtp is not None else None


def _mailer(request: Request) -> tuple[Mailer, str]:
    smtp = web.settings(request).smtp
    if smtp is None:
        raise MailNotSetUp()
    return SmtpMailer(smtp), smtp.sender


def send_invitation(request: Request, invitation: Invitation) -> None:
    """Mail a Classic or User Portal invitation (``Linking.invite_classic`` / ``invite_portal``)
    to its user."""
    out, sender = _mailer(request)
    out.send(invitation_message(invitation, sender=sender))


def send_share_link(request: Request, org_id: str, to: str) -> str:
    """Mail the org's current share link to ``to``; returns the link (the page may show it)."""
    out, sender = _mailer(request)
    url = web.linking(request).share_link(org_id)
    store = web.store(request)
    with store.transaction():
        org_name = store.org_name(org_id) or "Your organisation"
    out.send(share_link_message(to, org_name, url, sender=sender))
    return url


def send_linking_code(request: Request, user: User, issued: Issued) -> None:
    """Mail a linking code (``Linking.create_linking_code``) to the user it was made for."""
    out, sender = _mailer(request)
    out.send(linking_code_message(user, issued, sender=sender))
