"""
Tests for the client's side of receipts, offers and file-pending notices,
and of the current speed and ETA: the core on a fake transport, and the
full-screen view's question.
"""

import hashlib
import os
from typing import Any

from support.client_harness import connected, result_of

from chatnet.client import render
from chatnet.client.chat_view import ChatView
from chatnet.client.transfers import SPEED_WINDOW, Transfer

from .test_chat_view import View
from .test_uploads import offer

DATA = b"hello world"
SHA = hashlib.sha256(DATA).hexdigest()


def lines(h: Any) -> list[str]:
    out = []
    for e in h.events:
        kind = getattr(e, "kind", None)
        if kind and kind != "progress":
            line = render.transfer_event(kind, e.transfer, e.frame)
            if line is not None:
                out.append(line.text)
    return out


def receive(h: Any, transfer: int = 3, sha: str = SHA) -> None:
    h.feed({"type": "file-start", "transfer": transfer, "from": "bob", "name": "a.txt",
            "size": len(DATA)})
    h.feed_data(transfer, DATA)
    h.feed({"type": "file-end", "transfer": transfer, "sha256": sha})


def test_receiver_confirms_what_it_saved(tmp_path: Any) -> None:
    h = connected(str(tmp_path / "dl"))
    receive(h)
    assert h.requests() == [{"type": "received", "id": 2, "transfer": 3, "sha256": SHA}]
    assert "sha256 matched" in lines(h)[-1]


def test_receiver_confirms_a_damaged_file_with_its_own_hash(tmp_path: Any) -> None:
    h = connected(str(tmp_path / "dl"))
    receive(h, sha="0" * 64)
    (req,) = h.requests()
    assert req["type"] == "received" and req["sha256"] == SHA  # verified false at the sender
    assert os.listdir(tmp_path / "dl") == []


def test_sender_says_sent_then_received(tmp_path: Any) -> None:
    h = connected(str(tmp_path / "dl"))
    path = tmp_path / "photo.bin"
    path.write_bytes(DATA)
    upload = offer(h, str(path))
    h.feed({"type": "upload-start", "transfer": 7, "waited": 0})
    h.feed({"type": "upload-done", "transfer": 7, "waited": 0, "seconds": 0.1})
    h.feed({"type": "file-delivered", "transfer": 7, "to": "bob"})
    assert lines(h)[-1] == "[file] photo.bin sent to bob"
    assert result_of(upload.done) is upload
    h.feed({"type": "file-received", "transfer": 7, "to": "bob", "verified": True})
    assert lines(h)[-1] == "[file] bob received photo.bin, sha256 verified"
    assert upload.state == "received" and upload.verified is True


def test_sender_told_when_not_verified(tmp_path: Any) -> None:
    h = connected(str(tmp_path / "dl"))
    path = tmp_path / "photo.bin"
    path.write_bytes(DATA)
    offer(h, str(path))
    h.feed({"type": "upload-start", "transfer": 7, "waited": 0})
    h.feed({"type": "upload-done", "transfer": 7, "waited": 0, "seconds": 0.1})
    h.feed({"type": "file-delivered", "transfer": 7, "to": "bob"})
    h.feed({"type": "file-received", "transfer": 7, "to": "bob", "verified": False})
    assert "did NOT match" in lines(h)[-1]


def test_login_asks_for_offers_only_when_told(tmp_path: Any) -> None:
    h = connected(str(tmp_path / "dl"), login=False)
    h.core.offers = True
    h.core.login("alice")
    (req,) = h.requests()
    assert req["offers"] is True and req["notices"] is True


def test_unasked_offer_is_accepted(tmp_path: Any) -> None:
    """A server offering to a client that did not ask for offers: take the file."""
    h = connected(str(tmp_path / "dl"))
    h.feed({"type": "file-offer", "transfer": 3, "from": "bob", "name": "a.txt", "size": 11})
    assert h.requests() == [{"type": "accept", "id": 2, "transfer": 3}]


def test_decline_command(tmp_path: Any) -> None:
    from chatnet.client.commands import parse

    h = connected(str(tmp_path / "dl"))
    h.core.offers = True
    h.feed({"type": "file-offer", "transfer": 3, "from": "bob", "name": "a.txt", "size": 11})
    assert h.requests() == []
    d = h.core.execute(parse("/decline 3"))
    (req,) = h.requests()
    assert req == {"type": "decline", "id": 2, "transfer": 3}
    h.reply(req)
    result_of(d)
    assert h.core.downloads[3].state == "discarded"
    assert lines(h)[-1] == "[file] declined a.txt from bob"
    assert not h.core.busy()


def test_pending_then_withdrawn(tmp_path: Any) -> None:
    h = connected(str(tmp_path / "dl"))
    h.feed({"type": "file-pending", "transfer": 3, "from": "bob", "name": "a.txt",
            "size": 11, "state": "queued", "position": 2})
    assert lines(h) == ["[file] bob is sending you a.txt (11 B): queued, 2 ahead"]
    t = h.core.downloads[3]
    assert render.progress_texts(t, h.clock.seconds())[1] == "queued, 2 ahead"
    assert not h.core.busy()  # a line-mode client does not wait for it at the end
    h.feed({"type": "file-pending", "transfer": 3, "from": "bob", "name": "a.txt",
            "size": 11, "state": "uploading"})
    assert render.progress_texts(t, h.clock.seconds())[1] == "uploading to the server"
    h.feed({"type": "file-aborted", "transfer": 3, "reason": "cancelled"})
    assert lines(h)[-1] == "[file] a.txt from bob will not come: cancelled"


def test_pending_then_received(tmp_path: Any) -> None:
    h = connected(str(tmp_path / "dl"))
    h.feed({"type": "file-pending", "transfer": 3, "from": "bob", "name": "a.txt",
            "size": 11, "state": "uploading"})
    receive(h)
    assert h.core.downloads[3].state == "saved"


def test_speed_is_a_moving_window() -> None:
    t = Transfer(name="a", size=100_000, peer="bob", state="sending", started_at=0.0)
    for second in range(1, 11):  # 10 KB/s for 10 s
        t.moved(second * 5_000 if second <= 5 else 25_000 + (second - 5) * 1_000, float(second))
    # The last seconds ran at 1 KB/s: the average since the start would say 3 KB/s.
    assert abs(t.speed(10.0) - 1_000) < 1
    assert t.eta(10.0) == (100_000 - 30_000) / t.speed(10.0)
    assert t.speed(10.0 + SPEED_WINDOW + 5) < 400  # stalled: the speed falls


def test_full_screen_asks_before_each_file(tmp_path: Any) -> None:
    v = View(tmp_path)
    v.h.core.offers = True
    v.login()
    v.h.feed({"type": "file-offer", "transfer": 3, "from": "bob", "name": "report.pdf",
              "size": 2202009})
    v.h.feed({"type": "file-offer", "transfer": 4, "from": "bob", "name": "b.txt", "size": 1})
    assert "bob offers report.pdf (2.1 MiB): accept? [y/N]" in v.screen()
    v.type("/users")  # an ordinary line: carried out, the question stays
    (said,) = v.h.requests()
    assert said["type"] == "users"
    v.h.reply(said, users=["alice", "bob"])
    v.type("y")
    assert v.h.requests() == [{"type": "accept", "id": said["id"] + 1, "transfer": 3}]
    assert "bob offers b.txt (1 B): accept? [y/N]" in v.screen()
    v.type("")
    assert v.h.requests() == [{"type": "decline", "id": said["id"] + 2, "transfer": 4}]
    assert "[y/N]" not in v.screen()


def test_full_screen_forgets_a_withdrawn_offer(tmp_path: Any) -> None:
    v = View(tmp_path)
    v.h.core.offers = True
    v.login()
    v.h.feed({"type": "file-offer", "transfer": 3, "from": "bob", "name": "a.txt", "size": 1})
    assert "[y/N]" in v.screen()
    v.h.feed({"type": "file-aborted", "transfer": 3, "reason": "declined"})
    assert "[y/N]" not in v.screen()
    assert isinstance(v.view, ChatView)
