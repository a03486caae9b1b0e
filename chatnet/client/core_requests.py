"""
What the client core asks of the server: the request API of
:class:`~chatnet.client.core.ClientCore`.

Logging in (with its timeout), carrying out parsed commands (``/rooms`` and
``/users`` page by page), ``exit``, and the file requests: offer, cancel,
accept, decline.  Each returns a :class:`~twisted.internet.defer.Deferred`
that fires with the reply.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall

from chatnet import frames, validation
from chatnet.client.advice import no_login_reply
from chatnet.client.commands import (
    Command,
    Exit,
    Help,
    Nothing,
    ParseError,
    Reconnect,
    Send,
    SendFile,
    check_state,
)
from chatnet.client.core_connection import CoreConnection
from chatnet.client.events import LocalError
from chatnet.client.uploads import Upload, fail
from chatnet.errors import ChatError

__all__ = ["CoreRequests"]


class CoreRequests(CoreConnection):
    """The requests a front end makes, on top of the connection they go to."""

    def login(self, username: str, password: str | None = None) -> Deferred[frames.LoginOk]:
        """
        Log in; on success ``username``, ``server`` and ``limits`` are set.
        A name the server would refuse fails with :class:`LocalError` first.
        """
        try:
            validation.check_username(username)
        except ChatError as e:
            return fail(LocalError(e.message))
        # notices: told of files on their way (a chatnet extension; other
        # servers ignore the field).
        request = frames.Login(
            username=username, password=password, offers=self.offers or None, notices=True,
        )
        d = self.request(request)
        if self.is_connected:
            why = no_login_reply(self.login_timeout)
            timer = self.clock.callLater(self.login_timeout, self._give_up, why)
            d.addBoth(_cancelling, timer)
        return d.addCallback(self._logged_in)

    def _logged_in(self, reply: frames.Reply) -> frames.LoginOk:
        assert isinstance(reply, frames.LoginOk)
        self.roster.logged_in(reply)
        if self.keepalive is not None and self._gone is None:
            self.keepalive.start()
        return reply

    def execute(self, command: Command) -> Deferred[Any]:
        """
        Carry out a parsed command.

        :returns: the reply (a :class:`~chatnet.frames.Reply`) for requests, the
            :class:`~chatnet.client.uploads.Upload` for ``SendFile``,
            ``None`` for local commands.
        """
        if isinstance(command, Send):
            try:
                check_state(command, self.room if self.username else "")
            except ParseError as e:
                return fail(LocalError(e.message))
            if command.type == "accept":
                return self.accept(command.fields["transfer"])
            if command.type == "decline":
                return self.decline(command.fields["transfer"])
            request = command.request()
            if isinstance(request, frames.Rooms | frames.Users):
                return self._every_page(request).addCallback(self._track, request)
            return self.request(request).addCallback(self._track, request)
        if isinstance(command, SendFile):
            return self.send_file(command.path, command.to)
        if isinstance(command, Exit):
            return self.exit()
        if isinstance(command, Help | Nothing | Reconnect):  # the front ends' own
            return succeed(None)
        raise TypeError(command)

    def _every_page(self, request: frames.Rooms | frames.Users) -> Deferred[frames.Reply]:
        """
        ``/rooms`` and ``/users``: ask page after page (``after`` the last
        name) while the server says ``more``.

        :returns: fires with one reply holding every page's entries.
        """
        pages: list[Any] = []

        def got(reply: frames.Reply) -> Any:
            if not isinstance(reply, frames.RoomsOk | frames.UsersOk):
                return reply
            pages.append(reply)
            if isinstance(reply, frames.RoomsOk):
                names = [r.name for r in reply.rooms]
            else:
                names = list(reply.users)
            if reply.more and names and len(pages) < _MOST_PAGES:
                following = dataclasses.replace(request, id=None, after=names[-1])
                return self.request(following).addCallback(got)
            if isinstance(reply, frames.RoomsOk):
                rooms = tuple(r for page in pages for r in page.rooms)
                return dataclasses.replace(pages[0], rooms=rooms, more=False)
            users = tuple(u for page in pages for u in page.users)
            return dataclasses.replace(pages[0], users=users, more=False)

        return self.request(request).addCallback(got)

    def _track(self, reply: frames.Reply, request: frames.Request) -> frames.Reply:
        self.roster.replied(request, reply)
        return reply

    def exit(self) -> Deferred[Any]:
        """Say ``exit``; fires when the server closed the connection."""
        if not self.is_connected:
            return succeed(None)
        self.request(frames.Exit()).addErrback(lambda f: None)
        return self.when_closed()

    def send_file(self, path: str, to: str) -> Deferred[Upload]:
        """
        Check and offer a file; fires with the
        :class:`~chatnet.client.uploads.Upload` once queued (its ``done``
        fires when delivered or failed).
        """
        return self.outgoing.offer(path, to, self.limits.file_size)

    def cancel(self, transfer: int) -> Deferred[frames.Reply]:
        """Cancel one of our uploads."""
        return self.request(frames.Cancel(transfer=transfer))

    def accept(self, transfer: int) -> Deferred[frames.Reply]:
        """Accept a file offered to us: ``file-start`` and the data follow."""
        return self.request(frames.Accept(transfer=transfer))

    def decline(self, transfer: int) -> Deferred[frames.Reply]:
        """Decline a file offered to us."""
        d = self.request(frames.Decline(transfer=transfer))

        def declined(reply: frames.Reply) -> frames.Reply:
            self.incoming.declined(transfer)
            return reply

        return d.addCallback(declined)


def _cancelling(result: Any, timer: IDelayedCall) -> Any:
    """Pass ``result`` on, cancelling ``timer`` if it has not run."""
    if timer.active():
        timer.cancel()
    return result


#: ``/rooms`` and ``/users`` stop asking for pages after this many (a server
#: that always says ``more`` cannot keep the client asking for ever).
_MOST_PAGES = 1000
