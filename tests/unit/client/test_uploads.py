"""Tests for :mod:`chatnet.client.uploads`: checks, sending through Outbound, the steps."""

import os
from typing import Any

import pytest
from support import raw
from support.client_harness import (
    Harness,
    Pipe,
    connected,
    has_result,
    parse_stream,
    result_of,
)
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from chatnet import frames
from chatnet.client.commands import SendFile
from chatnet.client.events import LocalError, ServerEvent
from chatnet.client.uploads import UPLOAD_CHUNK, inspect_file
from chatnet.errors import ChatError

CHUNK = 2**14


def offer(h: Harness, path: str, to: str = "bob", transfer: int = 7, position: int = 0) -> Any:
    """Offer ``path``, accept it as ``transfer``; returns the Upload."""
    d = h.core.execute(SendFile(path, to))
    (req,) = h.requests()
    assert req["type"] == "sendfile"
    h.reply(req, transfer=transfer, position=position)
    return result_of(d)


def kind(frame: raw.Frame) -> str:
    """A control frame's type."""
    assert isinstance(frame, raw.Request), frame
    return frame.type


def data_by_transfer(frames: list[raw.Frame]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for f in frames:
        if isinstance(f, raw.DataFrame):
            out[f.transfer] = out.get(f.transfer, b"") + f.data
    return out


# -- checks before sending -------------------------------------------------


def test_inspect_missing_file(tmp_path: Any) -> None:
    """A missing file is refused with the path and a hint."""
    with pytest.raises(LocalError, match=r"No such file: '.*nope.txt'. Check the path"):
        inspect_file(str(tmp_path / "nope.txt"), 100)


def test_inspect_directory(tmp_path: Any) -> None:
    """A directory is not a file."""
    with pytest.raises(LocalError, match="is a directory; /sendfile sends one file"):
        inspect_file(str(tmp_path), 100)


def test_inspect_too_large(tmp_path: Any) -> None:
    """A file over the server's limit is refused with both sizes."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(LocalError, match=r"big.bin is 2.0 KiB; this server takes files up to 1.0 KiB \(1024 bytes\)"):
        inspect_file(str(path), 1024)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_inspect_unreadable(tmp_path: Any) -> None:
    """A file without read permission is refused."""
    path = tmp_path / "secret.txt"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(LocalError, match="permission denied"):
        inspect_file(str(path), 1024)


def test_inspect_not_regular(tmp_path: Any) -> None:
    """Devices and pipes are refused."""
    with pytest.raises(LocalError, match="not a regular file"):
        inspect_file("/dev/null", 1024)


def test_inspect_bad_name(tmp_path: Any) -> None:
    """A name the server would refuse is refused first."""
    path = tmp_path / "bad\x01name.txt"
    path.write_bytes(b"x")
    with pytest.raises(LocalError, match="control characters; rename the file first"):
        inspect_file(str(path), 1024)


def test_send_file_checks_against_login_limits(tmp_path: Any) -> None:
    """The size limit comes from the server's ``limits``; nothing is sent."""
    h = connected(str(tmp_path / "dl"), file_size=3)
    path = tmp_path / "four.txt"
    path.write_bytes(b"1234")
    with pytest.raises(LocalError, match="up to 3 B"):
        result_of(h.core.execute(SendFile(str(path), "bob")))
    assert h.requests() == []
    assert not h.core.busy()


def test_sendfile_refused_by_server(tmp_path: Any) -> None:
    """A refusal closes the file and leaves nothing pending."""
    h = connected(str(tmp_path / "dl"))
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    d = h.core.execute(SendFile(str(path), "zed"))
    (req,) = h.requests()
    assert req == {"type": "sendfile", "id": 2, "to": "zed", "name": "a.txt", "size": 3}
    h.feed({"type": "error", "id": 2, "code": "no-such-user", "message": "No user 'zed'"})
    with pytest.raises(ChatError, match="No user"):
        result_of(d)
    assert not h.core.busy()


# -- uploads ---------------------------------------------------------------


def test_upload_whole_flow(tmp_path: Any) -> None:
    """Queued, started, data frames of exactly the file, done, delivered."""
    h = connected(str(tmp_path / "dl"))
    content = os.urandom(CHUNK * 3 + 100)
    path = tmp_path / "report.pdf"
    path.write_bytes(content)
    upload = offer(h, str(path), position=2)
    assert (upload.transfer, upload.position, upload.state) == (7, 2, "queued")
    assert h.requests() == []  # nothing before upload-start
    idle = h.core.when_idle()
    h.feed({"type": "upload-start", "transfer": 7, "waited": 1.5})
    assert h.transport.producer is h.core.outbound
    sent = h.sent()
    assert data_by_transfer(sent) == {7: content}
    assert all(len(f.data) <= frames.MAX_DATA for f in sent if isinstance(f, raw.DataFrame))
    assert upload.done_bytes == len(content) and upload.percent() == 100
    h.feed({"type": "upload-done", "transfer": 7, "waited": 1.5, "seconds": 0.1})
    assert not has_result(upload.done) and not has_result(idle)
    h.feed({"type": "file-delivered", "transfer": 7, "to": "bob"})
    assert result_of(upload.done).state == "delivered"
    assert not has_result(idle)  # the receipt may still come
    h.feed({"type": "file-received", "transfer": 7, "to": "bob", "verified": True})
    assert has_result(idle)
    assert [k for k in h.kinds() if k != "progress"] == [
        "queued", "started", "uploaded", "delivered", "received"]


def test_two_uploads_interleave_and_chat_goes_first(tmp_path: Any) -> None:
    """
    Two running uploads alternate chunks as the socket drains; a request
    made meanwhile goes out before the next chunk (the server's Outbound).
    """
    pipe = Pipe()
    h = connected(str(tmp_path / "dl"), transport=pipe)
    a, b = os.urandom(frames.MAX_DATA * 3), os.urandom(frames.MAX_DATA * 3)
    (tmp_path / "a.bin").write_bytes(a)
    (tmp_path / "b.bin").write_bytes(b)
    offer(h, str(tmp_path / "a.bin"), transfer=1)
    offer(h, str(tmp_path / "b.bin"), transfer=2)
    pipe.drain()
    pipe.limit = 1  # a full socket: one write at a time
    h.feed({"type": "upload-start", "transfer": 1, "waited": 0},
           {"type": "upload-start", "transfer": 2, "waited": 0})
    order: list[Any] = []
    sent: list[raw.Frame] = []
    for turn in range(2 + 2 * len(a) // UPLOAD_CHUNK + 2):  # 16 KiB upload frames
        if turn == 2:
            h.core.request(frames.Broadcast(text="still chatting"))  # queued: paused
        chunk = parse_stream(pipe.drain())
        sent += chunk
        order.append([f.transfer if isinstance(f, raw.DataFrame) else kind(f) for f in chunk])
    # Chunk 1 was in the socket before upload 2 started; the broadcast asked
    # for while a chunk of 2 sat in the socket goes before any more data.
    assert order[:6] == [[1], [1], [2], ["broadcast"], [1], [2]]
    assert data_by_transfer(sent) == {1: a, 2: b}


def test_upload_pauses_with_transport(tmp_path: Any) -> None:
    """While the transport pauses the connection, no data is written."""
    h = connected(str(tmp_path / "dl"))
    content = os.urandom(CHUNK * 20)
    (tmp_path / "f").write_bytes(content)
    offer(h, str(tmp_path / "f"), transfer=3)
    assert h.core.outbound is not None
    h.core.outbound.pauseProducing()
    h.feed({"type": "upload-start", "transfer": 3, "waited": 0})
    assert data_by_transfer(h.sent()) == {}
    h.core.outbound.resumeProducing()
    assert data_by_transfer(h.sent()) == {3: content}


def test_empty_file_sends_no_data(tmp_path: Any) -> None:
    """An empty file has no data frames at all."""
    h = connected(str(tmp_path / "dl"))
    (tmp_path / "empty").write_bytes(b"")
    upload = offer(h, str(tmp_path / "empty"), transfer=4)
    h.feed({"type": "upload-start", "transfer": 4, "waited": 0})
    assert [f for f in h.sent() if isinstance(f, raw.DataFrame)] == []
    assert upload.percent() == 100


def test_cancel_running_upload(tmp_path: Any) -> None:
    """``/cancel`` asks the server at once; ``file-failed`` stops the sender."""
    pipe = Pipe()
    h = connected(str(tmp_path / "dl"), transport=pipe)
    (tmp_path / "f").write_bytes(os.urandom(frames.MAX_DATA * 40))
    upload = offer(h, str(tmp_path / "f"), transfer=5)
    pipe.drain()
    pipe.limit = 1  # a full socket: one write at a time
    h.feed({"type": "upload-start", "transfer": 5, "waited": 0})
    assert list(data_by_transfer(parse_stream(pipe.drain()))) == [5]
    d = h.core.cancel(5)
    # What was in the socket, then the cancel, before any further chunk.
    out = parse_stream(pipe.drain()) + parse_stream(pipe.drain())
    assert [f.transfer if isinstance(f, raw.DataFrame) else kind(f) for f in out] == [5, "cancel"]
    (req,) = [f.fields for f in out if isinstance(f, raw.Request)]
    assert req == {"type": "cancel", "id": 3, "transfer": 5}
    h.reply(req, transfer=5)
    h.feed({"type": "file-failed", "transfer": 5, "reason": "cancelled"})
    result_of(d)
    pipe.drain()  # the chunk already in the socket
    assert data_by_transfer(parse_stream(pipe.drain() + pipe.drain())) == {}
    assert (upload.state, upload.reason) == ("failed", "cancelled")
    assert result_of(upload.done) is upload
    assert not h.core.busy()


def test_data_in_flight_after_cancel_is_no_news(tmp_path: Any) -> None:
    """
    The server refuses, without an ``id``, the data frames that were already
    on their way when the upload was cancelled: those ``bad-transfer``
    errors are not shown ("Transfer 5 is not an upload of yours" right
    after "cancelled" confused people); --json still prints them, and a
    later one is shown again.
    """
    h = connected(str(tmp_path / "dl"))
    (tmp_path / "f").write_bytes(os.urandom(frames.MAX_DATA * 4))
    offer(h, str(tmp_path / "f"), transfer=5)
    h.feed({"type": "upload-start", "transfer": 5, "waited": 0})
    json: list[Any] = []
    h.core.on_frame(json.append)
    d = h.core.cancel(5)
    (req,) = [r for r in h.requests() if r["type"] == "cancel"]
    h.reply(req, transfer=5)
    h.feed({"type": "file-failed", "transfer": 5, "reason": "cancelled"})
    result_of(d)
    del h.events[:]
    echo = {"type": "error", "code": "bad-transfer",
            "message": "Transfer 5 is not an upload of yours"}
    h.feed(echo, echo)
    assert [e for e in h.events if isinstance(e, ServerEvent)] == []
    assert [f["type"] for f in json].count("error") == 2
    h.clock.advance(60)
    h.feed(echo)
    shown = [e.frame for e in h.events if isinstance(e, ServerEvent)]
    assert [f.message for f in shown if isinstance(f, frames.ErrorReply)] == [
        "Transfer 5 is not an upload of yours"]


def test_lost_connection_fails_uploads(tmp_path: Any) -> None:
    """Unfinished uploads fail when the connection goes."""
    h = connected(str(tmp_path / "dl"))
    (tmp_path / "f").write_bytes(b"abc")
    upload = offer(h, str(tmp_path / "f"), transfer=6)
    h.protocol.connectionLost(Failure(ConnectionLost()))
    assert (upload.state, upload.reason) == ("failed", "connection lost")



def test_queue_positions_move_up(tmp_path: Any) -> None:
    """When one of our queued uploads starts, ours behind it move up."""
    h = connected(str(tmp_path / "dl"))
    (tmp_path / "f").write_bytes(b"abc")
    first = offer(h, str(tmp_path / "f"), transfer=1, position=0)
    second = offer(h, str(tmp_path / "f"), transfer=2, position=1)
    third = offer(h, str(tmp_path / "f"), transfer=3, position=2)
    h.feed({"type": "upload-start", "transfer": 1, "waited": 0})
    assert (first.position, second.position, third.position) == (0, 0, 1)
    h.feed({"type": "upload-start", "transfer": 2, "waited": 0})
    assert third.position == 0
