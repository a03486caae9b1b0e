"""
Tests for receipts (``received`` / ``file-received``), offers (``file-offer``,
``accept``, ``decline``, the offer timeout) and the ``file-pending`` notices
of :mod:`chatnet.transfers`, on a fake clock.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

import pytest
from support.chat import error_code, logged_in, new_server, offer, start, upload

from chatnet import receipts
from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server

SHA = hashlib.sha256(b"abcd").hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return new_server(tmp_path / "spool", upload_slots=1, offer_timeout=30.0)


def login(server: Server, name: str, **fields: Any) -> FakeClient:
    client = server.connect()
    reply = client.request("login", username=name, **fields)
    assert reply["type"] == "ok", reply
    client.frames()
    return client


def delivered(server: Server) -> tuple[FakeClient, FakeClient, int]:
    """alice sent bob 'f' (abcd); bob has file-end."""
    alice, bob = logged_in(server, "alice", "bob")
    t = upload(server, alice, "bob", "f", b"abcd")
    assert [f["type"] for f in bob.events()] == ["file-start", "file-end"]
    assert [f["type"] for f in alice.events()] == ["upload-done", "file-delivered"]
    return alice, bob, t


# receipts


@pytest.mark.parametrize("sha, verified", [(SHA, True), (SHA.upper(), True), ("0" * 64, False)])
def test_receipt_reaches_the_sender(server: Server, sha: str, verified: bool) -> None:
    alice, bob, t = delivered(server)
    assert bob.request("received", transfer=t, sha256=sha)["type"] == "ok"
    assert alice.frames() == [
        {"type": "file-received", "transfer": t, "to": "bob", "verified": verified}]
    assert any("received by bob" in line for line in server.audit.category("FILE"))


def test_one_receipt_per_transfer(server: Server) -> None:
    alice, bob, t = delivered(server)
    bob.request("received", transfer=t, sha256=SHA)
    assert error_code(bob.request("received", transfer=t, sha256=SHA)) == "bad-transfer"


def test_receipt_from_someone_else_or_unknown(server: Server) -> None:
    alice, bob, t = delivered(server)
    (carol,) = logged_in(server, "carol")
    assert error_code(carol.request("received", transfer=t, sha256=SHA)) == "bad-transfer"
    assert error_code(alice.request("received", transfer=t, sha256=SHA)) == "bad-transfer"
    for number in (999, "1", True, None):
        assert error_code(bob.request("received", transfer=number, sha256=SHA)) == "bad-transfer"
    assert alice.events("file-received") == []


def test_receipt_before_file_end(server: Server) -> None:
    alice, bob = logged_in(server, "alice", "bob")
    t = start(server, alice, "bob", "f", 4)
    reply = bob.request("received", transfer=t, sha256=SHA)
    assert error_code(reply) == "bad-transfer" and "not ended" in reply["message"]


def test_receipt_after_the_sender_left_is_ok(server: Server) -> None:
    alice, bob, t = delivered(server)
    alice.lose()
    assert bob.request("received", transfer=t, sha256=SHA)["type"] == "ok"


def test_receipts_are_forgotten_after_a_while(server: Server) -> None:
    alice, bob, t = delivered(server)
    server.advance(receipts.RECEIPT_SECONDS + 1)
    assert error_code(bob.request("received", transfer=t, sha256=SHA)) == "bad-transfer"


def test_receipts_are_bounded_in_number() -> None:
    class T:
        def __init__(self, n: int, sender: Any, recipient: Any) -> None:
            self.id, self.sender, self.recipient = n, sender, recipient
            self.sender_gone, self.ended_at = False, 0.0

    kept: receipts.Receipts[Any] = receipts.Receipts(lambda: 0.0, kept=3)
    a, b = cast(Any, object()), cast(Any, object())
    for n in range(5):
        kept.remember(T(n, a, b))
    assert len(kept) == 3 and kept.get(0) is None and kept.get(4) is not None
    kept.user_gone(b)  # the addressee left: nothing can be confirmed any more
    assert len(kept) == 0


def test_receipt_of_a_reconnected_addressee_is_refused(server: Server) -> None:
    alice, bob, t = delivered(server)
    bob.lose()
    bob2 = login(server, "bob")
    assert error_code(bob2.request("received", transfer=t, sha256=SHA)) == "bad-transfer"


# offers


def offered(server: Server) -> tuple[FakeClient, FakeClient, int]:
    alice = login(server, "alice")
    bob = login(server, "bob", offers=True)
    t = upload(server, alice, "bob", "f", b"abcd")
    assert bob.frames() == [
        {"type": "file-offer", "transfer": t, "from": "alice", "name": "f", "size": 4}]
    assert alice.events("upload-done")
    return alice, bob, t


def test_accept_then_file_start(server: Server) -> None:
    alice, bob, t = offered(server)
    bob.send({"type": "accept", "id": 50, "transfer": t})
    got = bob.frames()
    assert got[0] == {"type": "ok", "id": 50}
    assert [f["type"] for f in got if isinstance(f, dict)] == ["ok", "file-start", "file-end"]
    assert b"".join(f[1] for f in got if isinstance(f, tuple)) == b"abcd"
    assert alice.events("file-delivered")
    assert bob.request("received", transfer=t, sha256=SHA)["type"] == "ok"
    assert alice.events("file-received")[0]["verified"] is True


def test_decline(server: Server) -> None:
    alice, bob, t = offered(server)
    assert bob.request("decline", transfer=t)["type"] == "ok"
    assert alice.frames() == [{"type": "file-failed", "transfer": t, "reason": "declined"}]
    assert bob.frames() == []
    assert server.transfers.active == {} and server.spool.leftovers() == []
    assert error_code(bob.request("accept", transfer=t)) == "bad-transfer"


def test_offer_timeout(server: Server) -> None:
    alice, bob, t = offered(server)
    server.advance(29)
    assert alice.frames() == []
    server.advance(1)
    assert alice.frames() == [{"type": "file-failed", "transfer": t, "reason": "declined"}]
    assert bob.frames() == []  # without notices: nothing the contract does not name
    assert error_code(bob.request("accept", transfer=t)) == "bad-transfer"
    assert server.spool.leftovers() == []


def test_accept_only_ones_own_offers(server: Server) -> None:
    alice, bob, t = offered(server)
    (carol,) = logged_in(server, "carol")
    assert error_code(carol.request("accept", transfer=t)) == "bad-transfer"
    assert error_code(alice.request("decline", transfer=t)) == "bad-transfer"
    assert error_code(bob.request("accept", transfer=12345)) == "bad-transfer"


def test_offers_count_against_the_addressees_deliveries(tmp_path: Path) -> None:
    server = new_server(tmp_path / "spool", deliveries_per_user=1)
    alice = login(server, "alice")
    bob = login(server, "bob", offers=True)
    t1 = upload(server, alice, "bob", "f", b"abcd")
    t2 = upload(server, alice, "bob", "f", b"abcd")
    assert [f["transfer"] for f in bob.events("file-offer")] == [t1]
    bob.send({"type": "decline", "id": 8, "transfer": t1})
    offers = bob.events("file-offer")
    assert [(f["transfer"], f["name"]) for f in offers] == [(t2, "f")]  # a declined name is free


def test_concurrent_offers_get_distinct_names(server: Server) -> None:
    alice = login(server, "alice")
    bob = login(server, "bob", offers=True)
    upload(server, alice, "bob", "f.txt", b"abcd")
    upload(server, alice, "bob", "f.txt", b"abcd")
    offers = bob.events("file-offer")
    assert [(f["name"], f.get("original")) for f in offers] == [
        ("f.txt", None), ("f_1.txt", "f.txt")]
    bob.send({"type": "accept", "id": 9, "transfer": offers[1]["transfer"]})
    starts = [f for f in bob.frames() if isinstance(f, dict) and f["type"] == "file-start"]
    assert starts[0]["name"] == "f_1.txt" and starts[0]["original"] == "f.txt"


def test_offered_addressee_leaving_fails_it(server: Server) -> None:
    alice, bob, t = offered(server)
    bob.lose()
    assert alice.frames() == [{"type": "file-failed", "transfer": t, "reason": "recipient-offline"}]
    assert server.spool.leftovers() == []


def test_sender_leaving_keeps_the_offer(server: Server) -> None:
    alice, bob, t = offered(server)
    alice.lose()
    bob.send({"type": "accept", "id": 3, "transfer": t})
    assert [f["type"] for f in bob.events()] == ["ok", "file-start", "file-end"]


# notices (a chatnet extension)


def test_no_notices_unless_asked(server: Server) -> None:
    alice, bob = logged_in(server, "alice", "bob")
    (blocker,) = logged_in(server, "blocker")
    start(server, blocker, "alice", "hold", 1)
    offer(alice, "bob", "f", 4)
    server.advance()
    assert bob.frames() == []


def test_notices_tell_of_a_file_on_its_way(server: Server) -> None:
    alice = login(server, "alice")
    bob = login(server, "bob", notices=True)
    (blocker,) = logged_in(server, "blocker")
    hold = start(server, blocker, "alice", "hold", 1)
    t = offer(alice, "bob", "f", 4)["transfer"]
    assert bob.frames() == [{"type": "file-pending", "transfer": t, "from": "alice",
                             "name": "f", "size": 4, "state": "queued", "position": 0}]
    blocker.send_data(hold, b"x")
    server.advance()
    assert bob.events() == [{"type": "file-pending", "transfer": t, "from": "alice",
                             "name": "f", "size": 4, "state": "uploading"}]
    alice.request("cancel", transfer=t)
    assert bob.events() == [{"type": "file-aborted", "transfer": t, "reason": "cancelled"}]


def test_notices_and_offer_timeout(server: Server) -> None:
    alice = login(server, "alice")
    bob = login(server, "bob", offers=True, notices=True)
    t = upload(server, alice, "bob", "f", b"abcd")
    assert [f["type"] for f in bob.events()] == ["file-pending", "file-offer"]
    server.advance(30)
    assert bob.events() == [{"type": "file-aborted", "transfer": t, "reason": "declined"}]
