"""
The requests about files: ``sendfile``, ``cancel``, ``received``,
``accept`` and ``decline``; the :class:`~chatnet.interfaces.Transfers` of
the hub does the work.

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

from functools import partial

from chatnet import frames
from chatnet.errors import FailReason
from chatnet.frames import Ok
from chatnet.interfaces import TransferTicket
from chatnet.model import User
from chatnet.session_base import SessionBase
from chatnet.shared_state import answered_now
from chatnet.validation import check_extension, check_filename, check_size


class FileRequests(SessionBase):
    """Files (a mixin of :class:`~chatnet.session.Session`)."""

    __slots__ = ()

    def _sendfile(self, req: frames.Sendfile) -> None:
        target = self.hub.shared.locate(req.to)
        if answered_now(target):
            self._send_to(req, target)  # type: ignore[arg-type]
        else:
            self.wait(target, partial(self._send_to, req), req.id)  # type: ignore[arg-type]

    def _send_to(self, req: frames.Sendfile, target: User) -> None:
        user = self._user()
        hub = self.hub
        settings = hub.settings
        name = check_filename(req.name)
        check_extension(name, settings.allowed_extensions)
        size = check_size(req.size, settings.max_file_size)
        answer = hub.transfers.offer(user, target, name, size)
        if answered_now(answer):
            self._accepted(req, answer)
        else:  # a cluster's upload slots answer later
            self.wait(answer, partial(self._accepted, req), req.id)

    def _accepted(self, req: frames.Sendfile, t: TransferTicket) -> None:
        self._reply(frames.SendfileOk(req.id, t.id, t.position))

    def _cancel(self, req: frames.Cancel) -> None:
        user = self._user()
        transfers = self.hub.transfers
        t = transfers.find_own(user, req.transfer)
        self._reply(frames.CancelOk(req.id, t.id))
        transfers.fail(t, FailReason.CANCELLED)

    def _received(self, req: frames.Received) -> None:
        self.hub.transfers.receipt(self._user(), req.transfer, req.sha256)
        self._reply(Ok(req.id))

    def _accept(self, req: frames.Accept) -> None:
        transfers = self.hub.transfers
        t = transfers.find_offer(self._user(), req.transfer)
        self._reply(Ok(req.id))  # before file-start
        transfers.accept(t)

    def _decline(self, req: frames.Decline) -> None:
        transfers = self.hub.transfers
        t = transfers.find_offer(self._user(), req.transfer)
        self._reply(Ok(req.id))
        transfers.fail(t, FailReason.DECLINED, tell_recipient=False)
