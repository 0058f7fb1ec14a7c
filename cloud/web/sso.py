"""Single sign-on with the org's OpenID Connect provider (Authlib's Starlette client).

``GET /sso/login`` sends the browser to the provider's authorization endpoint (found through its
discovery document) with a random ``state`` and ``nonce`` and a PKCE challenge (S256); Authlib
keeps them, with the PKCE verifier, in the signed session cookie until the callback.

``GET /sso/callback`` takes the provider's answer: the ``state`` must be one this browser was
given (else: refused, start again), the code is exchanged at the token endpoint with the client
secret and the PKCE verifier, and the ID token is checked (signature with the provider's JWKS,
issuer, audience, expiry, our nonce). The email comes from the ID token, or from the userinfo
endpoint when the provider keeps it there (for the same subject); it must be marked verified by
the provider. Then the use-case (``Linking.sign_in_sso``) finds the user with that email, or
refuses: single sign-on never creates users. A refusal is a page that says what to do.

Password sign-in stays as it was (auth_pages.py); both end in a portal session in the store.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, Request
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from cloud.linking import LinkCode
from cloud.storage.port import CloudStore
from cloud.web import context as web
from cloud.web.auth_pages import client_address, landing
from cloud.web.settings import OidcSettings
from protocol.errors import ErrorCode, MfdError

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

#: The one provider's name in Authlib's registry (and in its session keys).
CLIENT = "sso"
#: Session key: where to go after the callback (a path on this site).
NEXT = "sso_next"
#: Seconds for each request to the provider (discovery, keys, token, userinfo).
PROVIDER_TIMEOUT = 10.0


class SsoRefused(MfdError):
    """Single sign-on did not sign this person in; the message says what to do."""

    code = ErrorCode.NOT_ALLOWED


def check_config(oidc: OidcSettings, store: CloudStore) -> None:
    """At start: single sign-on without an org, on a store of several orgs, is refused (the
    provider would vouch for emails of every org); a named org must exist."""
    orgs = {org_id for org_id, _name in store.orgs()}
    if oidc.org and oidc.org not in orgs:
        raise MfdError(f"--oidc-org {oidc.org}: there is no such org (give the id mfd admin "
                       "org-add printed)", code="config_invalid")
    if not oidc.org and len(orgs) > 1:
        raise MfdError("single sign-on needs --oidc-org ORG (or MFD_OIDC_ORG) on a service of "
                       "several orgs: the provider signs in that org's people only",
                       code="config_invalid")


def _settings(request: Request) -> OidcSettings:
    oidc = web.settings(request).oidc
    if oidc is None:
        raise MfdError("single sign-on is not set up on this portal; sign in with your email "
                       "and password", code="not_enabled")
    return oidc


def _client(request: Request) -> Any:
    """The app's Authlib client for the provider, made on first use (the discovery document
    and the keys are fetched then, and kept)."""
    oidc = _settings(request)
    oauth: OAuth | None = getattr(request.app.state, "sso_oauth", None)
    if oauth is None:
        oauth = OAuth()
        oauth.register(
            CLIENT, client_id=oidc.client_id, client_secret=oidc.client_secret,
            server_metadata_url=oidc.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256",
                           "timeout": PROVIDER_TIMEOUT})
        request.app.state.sso_oauth = oauth
    return oauth.create_client(CLIENT)


def callback_url(request: Request) -> str:
    """The redirect URI registered at the provider: behind a proxy the public address."""
    base = web.settings(request).public_url or str(request.base_url)
    return base.rstrip("/") + "/sso/callback"


def _refused(request: Request, message: str, status: int = 403) -> Response:
    return web.render(request, "sso/refused.html", status_code=status, message=message)


@router.get("/sso/login")
async def sso_login(request: Request, next: str = "") -> Response:
    client = _client(request)
    request.session[NEXT] = web.safe_next(next, "")
    try:
        response: Response = await client.authorize_redirect(request, callback_url(request))
    except (httpx.HTTPError, AuthlibBaseError, ValueError, RuntimeError) as exc:
        log.warning("sso: the provider %s did not answer its discovery: %s",
                    _settings(request).issuer, type(exc).__name__)
        return _refused(request, "The single sign-on provider did not answer. Try again in a "
                        "moment, or sign in with your email and password.", 502)
    return response


@router.get("/sso/callback")
async def sso_callback(request: Request) -> Response:
    client = _client(request)
    issuer = _settings(request).issuer
    error = request.query_params.get("error")
    if error is not None:
        # The person cancelled at the provider, or the provider refused them. The code is
        # shown only when it looks like one (the query is anybody's to write).
        request.session.pop(NEXT, None)
        why = f" ({error})" if re.fullmatch(r"[a-z_]{1,40}", error) else ""
        return _refused(request, f"The single sign-on provider did not sign you in{why}. "
                        "Start again, or sign in with your email and password.")
    try:
        token = await client.authorize_access_token(request)
        claims = token.get("userinfo")
        if not claims:
            raise SsoRefused("the provider sent no ID token")
        if str(claims.get("iss", "")).rstrip("/") != issuer.rstrip("/"):
            # Authlib checks the token against the discovery document's issuer; this ties
            # that to the issuer the administrator configured.
            raise SsoRefused("the ID token comes from another issuer")
        if "email" not in claims:
            # Some providers put the email at the userinfo endpoint only.
            info = await client.userinfo(token=token)
            if info.get("sub") != claims.get("sub"):
                raise SsoRefused("the provider's userinfo is for another account")
            claims = {**claims, "email": info.get("email"),
                      "email_verified": info.get("email_verified")}
    except MismatchingStateError:
        return _refused(request, "This sign-in did not start here, or it took too long. Start "
                        "again from the sign-in page.")
    except SsoRefused as exc:
        return _refused(request, f"Single sign-on failed: {exc.message}. Start again.")
    except (AuthlibBaseError, JoseError) as exc:
        log.warning("sso: the answer from %s did not check out: %s", issuer,
                    type(exc).__name__)
        return _refused(request, "The single sign-on provider's answer did not check out. "
                        "Start again from the sign-in page.")
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("sso: the provider %s did not answer: %s", issuer, type(exc).__name__)
        return _refused(request, "The single sign-on provider did not answer. Try again in a "
                        "moment, or sign in with your email and password.", 502)
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        return _refused(request, "Your single sign-on account has no email address, so we "
                        "cannot tell which account is yours. Ask your administrator.")
    if claims.get("email_verified") is not True:
        return _refused(request, f"Your single sign-on provider has not verified {email}. "
                        "Verify it there, or ask your administrator.")
    subject = str(claims.get("sub", ""))
    oidc = _settings(request)
    try:
        # The use-case blocks on the store: it runs on the pool's threads, not the loop.
        session = await run_in_threadpool(
            lambda: web.linking(request).sign_in_sso(
                email, issuer, subject, source=client_address(request),
                org_id=oidc.org or None, domains=oidc.domains))
    except MfdError as exc:
        if exc.code == LinkCode.UNKNOWN_USER:
            return _refused(request, f"There is no account for {email} here. Ask your "
                            "administrator to add you, then sign in again.")
        if exc.code == ErrorCode.LOCKED_OUT:
            return _refused(request, exc.message[:1].upper() + exc.message[1:] + ".", 429)
        if exc.code == ErrorCode.NOT_ALLOWED:  # another account at the provider than before
            return _refused(request, exc.message[:1].upper() + exc.message[1:] + ".")
        if exc.code == "config_invalid":
            return _refused(request, "Single sign-on is not set up correctly here. Sign in "
                            "with your email and password, and tell your administrator.", 503)
        raise
    next_path = request.session.get(NEXT)
    web.start_session(request, session.token)
    role = getattr(session.user, "role", "user")
    return RedirectResponse(web.safe_next(next_path if isinstance(next_path, str) else "",
                                          landing(role)), status_code=303)
