"""Mail that people receive: the port (:class:`Mailer`), its SMTP adapter, and the messages
composed from the use-cases' results (invitations, the org's share link, a mobile linking code).

The messages carry secrets meant for their recipient only (an installer link, a linking code,
an invitation token in a link's fragment): they go to the mail server and nowhere else. Nothing
here logs a body, and an SMTP failure is reported by what to fix, never with the password.
"""

from __future__ import annotations

import html
import logging
import re
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Protocol

from cloud.linking.values import Invitation, Issued
from cloud.storage.port import User
from cloud.web.settings import SmtpSettings
from protocol.errors import MfdError

log = logging.getLogger(__name__)

#: Seconds an SMTP conversation may stall before the send fails (a page waits for it).
SMTP_TIMEOUT = 20.0

_URL_RE = re.compile(r"https?://[^\s<>\"]+")


class Mailer(Protocol):
    """Sends one message; raises :class:`MailError` saying what to fix when it cannot."""

    def send(self, message: EmailMessage) -> None: ...


class MailError(MfdError):
    """The mail could not be handed to the mail server."""

    code = "mail_failed"


class SmtpMailer:
    """A :class:`Mailer` over SMTP (smtplib): STARTTLS when configured (the server's certificate
    is checked against the system's CAs), then login when a user name is set."""

    def __init__(self, settings: SmtpSettings, *, timeout: float = SMTP_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """``ssl_context``: whom to trust for STARTTLS; the system's CAs by default (a server
        with a private CA: point SSL_CERT_FILE at a bundle that has it)."""
        self.settings = settings
        self.timeout = timeout
        self.ssl_context = ssl_context

    @property
    def sender(self) -> str:
        return self.settings.sender

    def send(self, message: EmailMessage) -> None:
        s = self.settings
        where = f"{s.host}:{s.port}"
        if message["From"] is None:
            message["From"] = s.sender
        try:
            with smtplib.SMTP(s.host, s.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if s.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                    smtp.ehlo()
                if s.username:
                    smtp.login(s.username, s.password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            # The server's words may quote what it was sent: say only what to check.
            raise MailError(f"the mail server {where} refused the SMTP login of user "
                            f"{s.username!r}; check the SMTP user name and password") from None
        except smtplib.SMTPNotSupportedError:
            what = "STARTTLS" if s.starttls and not s.username else "STARTTLS or login"
            raise MailError(f"the mail server {where} does not offer {what}; check the SMTP "
                            "port (587 usually takes STARTTLS and login) or turn "
                            "STARTTLS off for a relay that needs neither") from None
        except smtplib.SMTPSenderRefused:
            raise MailError(f"the mail server {where} refused the sender address {s.sender!r}; "
                            "set the SMTP sender to an address this server may send from"
                            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(sorted(exc.recipients))
            raise MailError(f"the mail server {where} refused the recipient {refused}; check the "
                            "address") from None
        except ssl.SSLError as exc:
            raise MailError(f"TLS with the mail server {where} failed ({exc.reason or exc}); "
                            "check that the server's certificate is valid for "
                            f"{s.host}") from None
        except smtplib.SMTPException as exc:
            raise MailError(f"the mail server {where} refused the message: "
                            f"{_scrub(_smtp_reply(exc), s.password)}") from None
        except OSError as exc:
            raise MailError(f"cannot reach the mail server {where}: "
                            f"{exc.strerror or type(exc).__name__}; check the SMTP host and port "
                            "and that this machine may connect there") from None
        log.info("mail: sent %r to %s", message["Subject"], message["To"])


def _smtp_reply(exc: smtplib.SMTPException) -> str:
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", b"")
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or exc)
    return f"{code} {words}".strip() if code else (words or type(exc).__name__)


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


# ---------------------------------------------------------------------------- messages


def compose(to: str, subject: str, text: str, *, sender: str = "") -> EmailMessage:
    """A plain text message with an HTML alternative (the same words, links clickable).

    English for now: the invitation texts come from the use-cases in English, and a mail that
    claimed the recipient's language (User.language) would have to be translated first."""
    address = parseaddr(to)[1]
    if "@" not in address:
        raise MailError(f"{to!r} is not an email address", code="invalid_field")
    message = EmailMessage()
    try:
        message["To"] = to
        message["Subject"] = subject
        if sender:
            message["From"] = sender
    except ValueError as exc:  # a line break in a header: never let it add headers
        raise MailError(f"cannot make a mail header from that: {exc}") from None
    message["Date"] = formatdate(time.time(), localtime=False)
    message["Message-ID"] = make_msgid(domain=_domain(sender))
    # Sent by the system, not a person: auto-responders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "en"
    message.set_content(text)
    message.add_alternative(_html(subject, text), subtype="html")
    return message


def _domain(sender: str) -> str | None:
    _, _, domain = sender.rpartition("@")
    return domain.strip("> ") or None


def _html(subject: str, text: str) -> str:
    paragraphs = []
    for block in text.strip().split("\n\n"):
        escaped = html.escape(block)
        linked = _URL_RE.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        paragraphs.append("<p>" + linked.replace("\n", "<br>\n") + "</p>")
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(subject)}</title></head>\n<body>\n"
            + "\n".join(paragraphs) + "\n</body></html>\n")


def _without_headers(body: str) -> str:
    """The use-cases write their invitation text as a whole mail ("To:", "Subject:", a blank
    line, the body) for the CLI to print; the message has those as real headers."""
    head, sep, rest = body.partition("\n\n")
    if sep and all(line.split(":", 1)[0] in ("To", "Subject") for line in head.splitlines()):
        return rest
    return body


def invitation_message(invitation: Invitation, *, sender: str = "") -> EmailMessage:
    """A Classic or User Portal invitation, as the use-case wrote it."""
    user = invitation.user
    return compose(user.email, invitation.subject, _without_headers(invitation.body),
                   sender=sender)


def share_link_message(to: str, org_name: str, url: str, *, sender: str = "") -> EmailMessage:
    """The org's User Portal sign-in link (not a credential: a password or single sign-on is
    still needed)."""
    text = (f"Hello,\n\n"
            f"{org_name} uses mfdkit secure printing. Sign in to the User Portal here to see your "
            "print jobs, release them to a copier and set up your devices:\n"
            f"  {url}\n\n"
            "Sign in with your email and password, or with single sign-on where your "
            "organisation offers it. No account yet? Ask your administrator for an "
            "invitation.\n")
    return compose(to, f"The {org_name} User Portal", text, sender=sender)


def linking_code_message(user: User, issued: Issued, *, sender: str = "") -> EmailMessage:
    """A one-time linking code for the mobile app (made in the portal or by the admin)."""
    minutes = max(1, round((issued.expires_at - time.time()) / 60))
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(issued.expires_at))
    text = (f"Hello {user.display_name or user.email},\n\n"
            "Enter this linking code in the mfdkit app on your phone or tablet:\n\n"
            f"  {issued.token}\n\n"
            f"It works once, for about {minutes} minutes (until {until}). Do not forward this "
            "email: anyone with the code could print in your name. If you did not ask for "
            "it, you can ignore this email.\n")
    return compose(user.email, "Your mfdkit linking code", text, sender=sender)
