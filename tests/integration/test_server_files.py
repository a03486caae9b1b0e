"""File transfers over real loopback TCP, against a ChatService on the global reactor."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.defer import ensureDeferred, gatherResults

from chatnet.transfers import TransferManager
from integration.helpers import ChatClient, LiveServer

MIB = 1024 * 1024


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def offer(sender: ChatClient, to: str, name: str, size: int) -> dict[str, Any]:
    reply = await sender.request("sendfile", to=to, name=name, size=size)
    assert reply["type"] == "ok", reply
    return reply


@pytest_twisted.ensureDeferred
async def test_full_transfer(tmp_path: Path) -> None:
    """A 3 MiB file arrives byte for byte with the right sha256; every event is sent."""
    server = LiveServer(tmp_path)
    try:
        alice, bob = await server.client("alice"), await server.client("bob")
        data = payload(3 * MIB, 1)
        reply = await offer(alice, "bob", "photo.jpg", len(data))
        t = reply["transfer"]
        assert reply["position"] == 0
        start = await alice.event("upload-start", transfer=t)
        assert start["waited"] >= 0
        alice.send_data(t, data)
        end = await bob.event("file-end", transfer=t)
        delivered = await alice.event("file-delivered", transfer=t)
        assert delivered == {"type": "file-delivered", "transfer": t, "to": "bob"}
        assert bytes(bob.data[t]) == data
        assert end["sha256"] == hashlib.sha256(data).hexdigest()
        assert bob.first("file-start", transfer=t) == {
            "type": "file-start", "transfer": t, "from": "alice", "name": "photo.jpg", "size": len(data)}
        done = alice.first("upload-done", transfer=t)
        assert done is not None and done["seconds"] >= 0
        assert [f["type"] for f in alice.frames[-3:]] == ["upload-start", "upload-done", "file-delivered"]
        assert server.spool_files() == []
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_ten_uploads_five_slots(tmp_path: Path) -> None:
    """Ten uploads at once: five run, five wait in order, never more than five running."""
    server = LiveServer(tmp_path)
    try:
        bob = await server.client("bob")
        senders = [await server.client(f"s{i}") for i in range(10)]
        files = [payload(200_000 + i, 10 + i) for i in range(10)]
        replies = await gatherResults(
            [ensureDeferred(offer(s, "bob", f"f{i}.bin", len(files[i])))
             for i, s in enumerate(senders)])
        # No data is sent until every upload was accepted, so five must wait.
        assert sorted(r["position"] for r in replies) == [0] * 6 + [1, 2, 3, 4]
        transfers = [r["transfer"] for r in replies]

        async def run(i: int) -> dict[str, Any]:
            s, t = senders[i], transfers[i]
            await s.event("upload-start", timeout=20, transfer=t)
            s.send_data(t, files[i])
            return await s.event("upload-done", timeout=20, transfer=t)

        dones = await gatherResults([ensureDeferred(run(i)) for i in range(10)])
        await bob.until(lambda: len(bob.of("file-end")) == 10, "ten files")
        for i, t in enumerate(transfers):
            assert bytes(bob.data[t]) == files[i]
            start = senders[i].first("upload-start", transfer=t)
            assert start is not None and dones[i]["waited"] == start["waited"] >= 0

        # The server's own order of starts and completions: never six at once.
        running = peak = 0
        for line in server.log_lines():
            if re.search(r"\[FILE-QUEUE\] transfer #\d+ .* started, waited \d+\.\d\ds", line):
                running += 1
                peak = max(peak, running)
            elif re.search(r"\[FILE\] transfer #\d+ .* uploaded", line):
                running -= 1
        assert peak == 5 and running == 0
        queue_lines = [line for line in server.log_lines() if "[FILE-QUEUE]" in line and "queued" in line]
        assert len(queue_lines) == 5
        assert server.spool_files() == []
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_sender_vanishes_mid_upload(tmp_path: Path) -> None:
    """A sender that drops mid-upload ends it (sender-disconnected); nothing reaches bob."""
    server = LiveServer(tmp_path)
    try:
        alice, bob = await server.client("alice"), await server.client("bob")
        t = (await offer(alice, "bob", "half.bin", 200_000))["transfer"]
        await alice.event("upload-start", transfer=t)
        alice.send_data(t, payload(100_000, 2))
        await alice.request("ping")  # the server has the first half
        failed = server.audit_event("FILE", "sender-disconnected")
        alice.transport.abortConnection()
        await failed
        hub = server.service.hub
        assert hub is not None
        assert isinstance(hub.transfers, TransferManager)
        assert not hub.transfers.active
        assert any("sender-disconnected" in line for line in server.log_lines())
        assert server.spool_files() == []
        await bob.request("ping")
        assert [f["type"] for f in bob.frames] == ["ok", "ok"]
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_addressee_vanishes_mid_upload(tmp_path: Path) -> None:
    """An addressee that drops while the upload runs fails it: recipient-offline."""
    server = LiveServer(tmp_path)
    try:
        alice, bob = await server.client("alice"), await server.client("bob")
        t = (await offer(alice, "bob", "x.bin", 100_000))["transfer"]
        await alice.event("upload-start", transfer=t)
        alice.send_data(t, payload(50_000, 3))
        bob.transport.abortConnection()
        failed = await alice.event("file-failed", transfer=t)
        assert failed["reason"] == "recipient-offline"
        assert server.spool_files() == []
        alice.send_data(t, payload(50_000, 3))  # the rest, too late
        error = await alice.event("error", code="bad-transfer")
        assert "id" not in error
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_addressee_vanishes_mid_delivery(tmp_path: Path) -> None:
    """An addressee that stops reading then drops during delivery: recipient-offline."""
    # Larger than the kernel buffers on the way (a few MiB), so the delivery
    # must stall.
    server = LiveServer(tmp_path, max_file_size=12 * MIB)
    try:
        alice, bob = await server.client("alice"), await server.client("bob")
        data = payload(12 * MIB, 4)
        t = (await offer(alice, "bob", "big.bin", len(data)))["transfer"]
        await alice.event("upload-start", transfer=t)
        bob.transport.pauseProducing()  # bob stops reading: delivery stalls
        alice.send_data(t, data)
        await alice.event("upload-done", transfer=t)
        assert alice.first("file-delivered") is None
        bob.transport.abortConnection()
        failed = await alice.event("file-failed", transfer=t)
        assert failed["reason"] == "recipient-offline"
        hub = server.service.hub
        assert hub is not None
        assert isinstance(hub.transfers, TransferManager)
        assert not hub.transfers.active  # ended before file-failed was sent
        assert server.spool_files() == []
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_sender_leaving_after_upload_does_not_stop_delivery(tmp_path: Path) -> None:
    """Once upload-done is sent, the sender may go; the addressee still gets the file."""
    server = LiveServer(tmp_path)
    try:
        alice, bob = await server.client("alice"), await server.client("bob")
        data = payload(1 * MIB, 5)
        bob.transport.pauseProducing()
        t = (await offer(alice, "bob", "gift.bin", len(data)))["transfer"]
        await alice.event("upload-start", transfer=t)
        alice.send_data(t, data)
        await alice.event("upload-done", transfer=t)
        alice.transport.abortConnection()
        await alice.wait_closed()
        bob.transport.resumeProducing()
        end = await bob.event("file-end", transfer=t)
        assert bytes(bob.data[t]) == data and end["sha256"] == hashlib.sha256(data).hexdigest()
        assert bob.first("file-aborted") is None
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_chat_flows_during_delivery(tmp_path: Path) -> None:
    """Messages sent while a file is being delivered arrive between its data frames."""
    server = LiveServer(tmp_path, max_file_size=12 * MIB)
    try:
        alice, bob = await server.client("alice"), await server.client("bob", room="r")
        carol = await server.client("carol", room="r")
        data = payload(12 * MIB, 6)
        t = (await offer(alice, "bob", "big.bin", len(data)))["transfer"]
        await alice.event("upload-start", transfer=t)
        bob.transport.pauseProducing()  # the delivery stalls part-way
        alice.send_data(t, data)
        await alice.event("upload-done", transfer=t)
        for i in range(3):
            await carol.request("broadcast", text=f"while the file moves {i}")
        bob.transport.resumeProducing()
        await bob.event("file-end", transfer=t)
        assert bytes(bob.data[t]) == data
        line = bob.timeline
        start, end = line.index("file-start"), line.index("file-end")
        messages = [i for i, kind in enumerate(line) if kind == "message"]
        assert len(messages) == 3 and all(start < i < end for i in messages)
        assert ("data", t) in line[messages[-1]:end]
        await alice.event("file-delivered", transfer=t)
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_addressee_reading_nothing_is_dropped_after_the_stall_timeout(tmp_path: Path) -> None:
    """Files pile up for a client that reads nothing: it is dropped, every file fails, the spool empties."""
    server = LiveServer(tmp_path, stall_timeout=0.5)
    try:
        alice, bob = await server.client("alice"), await server.client("bob")
        bob.transport.pauseProducing()  # bob reads nothing from now on
        dropped = server.audit_event("DISCONNECT", "read nothing for 0.5s", timeout=30)
        numbers = []
        for i in range(6):  # 18 MiB: more than the socket buffers hold
            t = (await offer(alice, "bob", f"f{i}.bin", 3 * MIB))["transfer"]
            await alice.event("upload-start", transfer=t)
            alice.send_data(t, payload(3 * MIB, i))
            numbers.append(t)
        assert "bob (" in await dropped
        # What fitted in the socket buffers counts as delivered (written to
        # bob's connection); everything else failed when bob was dropped.
        await alice.until(
            lambda: all(alice.first("file-delivered", transfer=t) or alice.first("file-failed", transfer=t)
                        for t in numbers),
            "an outcome for every file",
        )
        failed = [alice.first("file-failed", transfer=t) for t in numbers]
        assert {f["reason"] for f in failed if f} == {"recipient-offline"}
        assert len([f for f in failed if f]) >= 3
        assert server.spool_files() == []
        assert (await alice.request("users"))["users"] == ["alice"]
    finally:
        await server.stop()
