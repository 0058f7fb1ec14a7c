"""Client registration: a computer or Chromebook trades an installer token for a client token;
a seat registered again replaces its install; the admin's queues, installs and revocations."""

from __future__ import annotations

from cloud.hashing import token_hash
from cloud.linking.base import DEFAULT_QUEUE, LinkCode, LinkingBase, LinkingError, _text
from cloud.linking.values import ClientState, Registered
from cloud.storage.port import ClientInstall, ConflictError, Job, User, new_id
from protocol.errors import ErrorCode


class ClientRegistration(LinkingBase):
    """Registering client installs, and administering them and the org's queues."""

    def register(self, installer_token: str, *, kind: str = "workstation", machine: str,
                 os_user: str = "", source: str = "") -> Registered:
        """A computer or Chromebook registers with an installer token. Personal token: linked
        now; the org's anonymous token: linked at the first print (Authenticate-on-Print)."""
        if kind not in ("workstation", "chromebook"):
            raise LinkingError(ErrorCode.INVALID_FIELD, "kind must be workstation or chromebook"
                               " (the mobile app links with a password or a linking code)",
                               field="kind")
        token = _text(installer_token, "installer_token", max_len=256)
        machine = _text(machine, "machine")
        os_user = _text(os_user, "os_user", max_len=64, required=kind == "workstation")
        with self._work():
            now = self.clock()
            row = self.store.installer_token(token_hash(token))
            if row is None or row[5]:
                raise LinkingError(LinkCode.INVALID_TOKEN, "this installer is not valid (any "
                                   "more); ask your administrator for a new one",
                                   field="installer_token",
                                   trace=("client.register_refused", "-",
                                          f"unknown installer token from {source or '-'}"))
            if row[4] <= now:
                raise LinkingError(LinkCode.TOKEN_EXPIRED, "this installer has expired; get a "
                                   "new one from your invitation or the User Portal",
                                   field="installer_token",
                                   trace=("client.register_refused", f"installer:{row[0]}",
                                          "expired"))
            user = self._user(row[2]) if row[2] else None
            self.store.count_installer_use(row[0])
            return self._register(row[1], kind, machine, os_user, user,
                                  f"installer:{row[3]}", f"installer:{row[0]}")

    def _register(self, org_id: str, kind: str, machine: str, os_user: str, user: User | None,
                  via: str, actor: str) -> Registered:
        now = self.clock()
        for old_id in self.store.seat_installs(org_id, kind, machine, os_user):
            self.store.revoke_install(old_id, now)
            self._discard_pending(old_id, now, "client replaced")
            self.store.audit(now, actor, "client.replace", f"client:{old_id}",
                             "the same seat registered again")
        token = self._new("mfu" if kind == "mobile" else "mfc")
        install = ClientInstall(new_id("ci"), org_id, kind, machine, os_user,
                                user.id if user else None, via, now, now if user else None, None)
        try:
            self.store.add_install(install, token_hash(token))
        except ConflictError:
            # Another registration of this seat committed between the revocation and this insert.
            raise LinkingError(LinkCode.CONFLICT, "this device is registering twice at once; "
                               "try again") from None
        seat = f"{kind} {machine!r}" + (f" os user {os_user!r}" if os_user else "")
        self.store.audit(now, actor, "client.register", f"client:{install.id}",
                         f"{seat}, " + (f"linked to user:{user.id}" if user else "anonymous"))
        return Registered(install, token, user, self._queues_for(install))

    def _discard_pending(self, install_id: str, now: float, why: str) -> None:
        for job in self.store.jobs_of_client(install_id, "PENDING_AUTH"):
            if self.store.delete_job(job.id, now):
                self.store.audit(now, "cloud", "job.discard", f"job:{job.id}", why)
        self.store.close_auth_requests(install_id, now)

    def _install_by_token(self, token: str) -> ClientInstall:
        install = self.store.install_by_token(token_hash(_text(token, "token", max_len=256)))
        if install is None:
            raise LinkingError(LinkCode.INVALID_TOKEN, "this client is not registered (or was "
                               "replaced or revoked); link it again", field="token")
        return install

    def client_state(self, token: str) -> ClientState:
        """What a client shows: who it is linked to, its queues, the user's held jobs."""
        with self._work():
            install = self._install_by_token(token)
            user = self._user(install.user_id) if install.user_id else None
            held: list[Job] = []
            total = 0
            if user is not None:
                held, total = self.store.held_jobs(user.id, 0, 50, self.clock())
            queues = self._queues_for(install)
        return ClientState(install, user, queues, tuple(held), total)

    def add_queue(self, org_id: str, name: str) -> str:
        name = _text(name, "name", max_len=64)
        with self._work():
            self.store.org_settings(org_id)
            queue_id = new_id("q")
            now = self.clock()
            if name == DEFAULT_QUEUE or not self.store.add_queue(queue_id, org_id, name, now):
                raise LinkingError(LinkCode.CONFLICT, f"queue {name!r} exists already",
                                   field="name")
            self.store.audit(now, "admin", "queue.add", f"queue:{queue_id}", name)
        return queue_id

    def queues(self, org_id: str) -> tuple[str, ...]:
        """The org's deployed queues (without the default printer)."""
        with self.store.transaction():
            return self._queues(org_id)

    def installs(self, org_id: str, *,
                 include_revoked: bool = False) -> list[tuple[ClientInstall, User | None]]:
        with self.store.transaction():
            out = []
            for inst in self.store.installs_of_org(org_id, include_revoked):
                out.append((inst, self.store.user(inst.user_id) if inst.user_id else None))
        return out

    def revoke_install(self, install_id: str) -> None:
        """A lost laptop or phone: its token stops working at once."""
        with self._work():
            now = self.clock()
            if not self.store.revoke_install(install_id, now):
                raise LinkingError(LinkCode.INVALID_TOKEN, f"no active client {install_id}")
            self._discard_pending(install_id, now, "client revoked")
            self.store.audit(now, "admin", "client.revoke", f"client:{install_id}")
