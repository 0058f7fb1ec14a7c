"""What the User Portal's pages ask of client linking beyond the seed's flows: a person unlinks
one of their own clients, and an installer link is looked at (whose, until when) before its
bundle is made, without being spent."""

from __future__ import annotations

from dataclasses import dataclass

from cloud.hashing import token_hash
from cloud.linking.base import DEFAULT_QUEUE, LinkCode, LinkingError, _text
from cloud.linking.clients import ClientRegistration
from cloud.linking.signin import PortalSignIn
from cloud.storage.port import ClientInstall, User


@dataclass(frozen=True, slots=True)
class InstallerInfo:
    """An installer token as its download page shows it (the token itself is the caller's)."""

    org_name: str
    user: User | None  # None: the org's anonymous (bulk) installer
    expires_at: float
    portal_url: str


class PortalExtra(ClientRegistration, PortalSignIn):
    """The portal's own linking use-cases."""

    def unlink_device(self, session_token: str, install_id: str) -> ClientInstall:
        """The signed-in person unlinks one of their clients (a lost laptop, an old phone): its
        token stops working at once. Another person's client is refused exactly like one that
        does not exist."""
        install_id = _text(install_id, "install", max_len=64)
        with self._work():
            user = self._session_user(session_token)
            install = self.store.install(install_id)
            if install is None or install.user_id != user.id or install.revoked_at is not None:
                raise LinkingError(LinkCode.INVALID_TOKEN, "that device is not among your "
                                   "linked devices", field="install", actor=f"user:{user.id}",
                                   # Filed under the user (their org's log): the
                                   # id is theirs to type, and may be another org's.
                                   trace=("client.unlink_refused", f"user:{user.id}",
                                          f"client {install_id}: not the user's, or not "
                                          "linked"))
            now = self.clock()
            if not self.store.revoke_install(install.id, now):
                raise LinkingError(LinkCode.INVALID_TOKEN, "that device was unlinked already",
                                   field="install")
            self._discard_pending(install.id, now, "client unlinked by its user")
            self.store.audit(now, f"user:{user.id}", "client.unlink", f"client:{install.id}",
                             f"{install.kind} {install.machine!r} from the User Portal")
        return install

    def installer_info(self, installer_token: str) -> InstallerInfo:
        """Whose installer this token is and until when; refused like registration refuses
        it (unknown, revoked, expired). Not spent: registering with it is what counts."""
        token = _text(installer_token, "installer", max_len=256)
        with self._work():
            now = self.clock()
            row = self.store.installer_token(token_hash(token))
            if row is None or row[5]:
                raise LinkingError(LinkCode.INVALID_TOKEN, "this installer link is not valid "
                                   "(any more); ask your administrator for a new one, or get "
                                   "one from Set up my devices in the User Portal",
                                   field="installer",
                                   trace=("installer.download_refused", "-", "unknown token"))
            if row[4] <= now:
                raise LinkingError(LinkCode.TOKEN_EXPIRED, "this installer link has expired; "
                                   "get a new one from Set up my devices in the User Portal",
                                   field="installer")
            user = self._user(row[2]) if row[2] else None
            self.store.audit(now, "portal", "installer.download", f"installer:{row[0]}",
                             f"user:{user.id}" if user else "anonymous")
            return InstallerInfo(self._org_name(row[1]), user, row[4], self._base())

    def deployed_queues(self, session_token: str, install_id: str) -> tuple[str, ...]:
        """The print queues a linked client of the signed-in person installs: the default
        printer and the org's deployed queues."""
        with self._work():
            user = self._session_user(session_token)
            install = self.store.install(install_id)
            if install is None or install.user_id != user.id:
                return (DEFAULT_QUEUE,)
            return self._queues_for(install)
