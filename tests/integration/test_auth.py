"""
Password checks through twisted.cred in the reactor's thread pool, and a
server with accounts over TCP, on the global reactor.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
import pytest_twisted
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import reactor

from chatnet import auth
from chatnet.accounts import Accounts
from chatnet.testing import make_accounts
from integration.helpers import LiveServer, connect


class Watched(Accounts):
    """Accounts that note which thread checked each password."""

    threads: list[str]

    def verify(self, username: str, password: str) -> bool:
        self.threads.append(threading.current_thread().name)
        return super().verify(username, password)


def watched(passwords: dict[str, str]) -> Watched:
    accounts = make_accounts(passwords)
    w = Watched.__new__(Watched)
    w.__dict__.update(accounts.__dict__)
    w.threads = []
    return w


@pytest_twisted.ensureDeferred
async def test_portal_checks_in_a_thread() -> None:
    """The portal answers with the folded name, or UnauthorizedLogin; argon2 ran off the reactor."""
    accounts = watched({"alice": "s3cret"})
    portal = auth.portal_for(accounts)
    iface, avatar, logout = await portal.login(UsernamePassword(b"Alice", b"s3cret"), None, auth.IAccount)
    assert (iface, avatar) == (auth.IAccount, "alice")
    logout()
    for name, password in ((b"alice", b"nope"), (b"nobody", b"s3cret")):
        with pytest.raises(UnauthorizedLogin):
            await portal.login(UsernamePassword(name, password), None, auth.IAccount)
    assert len(accounts.threads) == 3
    assert threading.main_thread().name not in accounts.threads


@pytest_twisted.ensureDeferred
async def test_authenticator_answers_true_or_false() -> None:
    """What the session sees: True or False."""
    authenticator = auth.authenticator(make_accounts({"alice": "s3cret"}))
    assert await authenticator.check("alice", "s3cret") is True
    assert await authenticator.check("alice", "x") is False
    assert await authenticator.check("carol", "x") is False


@pytest_twisted.ensureDeferred
async def test_server_with_accounts_over_tcp(tmp_path: Path) -> None:
    """Logins checked in threads, while chat goes on; summed lines written at shutdown."""
    server = LiveServer(tmp_path, accounts=make_accounts({"alice": "s3cret", "bob": "pw"}))
    bob = await connect(server.port, "bob")
    assert (await bob.request("login", username="bob", password="pw"))["type"] == "ok"
    guesser = await connect(server.port, "guess")
    for n in range(3):
        reply = await guesser.request("login", username="alice", password=f"guess{n}")
        assert reply["code"] == "auth-failed"
        assert (await bob.request("ping"))["type"] == "ok"
    alice = await connect(server.port, "alice")
    assert (await alice.request("login", username="alice", password="s3cret"))["type"] == "ok"
    await server.service.stopService()
    log = server.log_path.read_text()
    assert log.count("[LOGIN-FAILED]") == 2
    assert "2 more failed logins for alice from 127.0.0.1 in the last minute" in log
    assert reactor.running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_checks_run_at_a_lower_priority() -> None:
    """The thread that runs a check is niced, so the reactor's thread goes first."""
    seen: list[int] = []

    def check() -> None:
        tid = threading.get_native_id()
        auth.in_background(lambda: seen.append(os.getpriority(os.PRIO_PROCESS, tid)))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=check)
    thread.start()
    thread.join(10)
    assert seen == [min(19, before + auth.NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
