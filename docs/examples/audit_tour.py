"""
Drive a real server through most of what its audit log records, to produce
``docs/examples/audit-sample.log``.

Run from an empty folder (the server writes ``server.log`` there)::

    printf 'alice:s3cret\nbob:hunter2\ncarol:tr0ub4dor\n' > accounts.txt
    chatnet-passwd --convert accounts.txt
    twistd -n chatnet --port tcp:8080:interface=127.0.0.1 --upload-slots 1 \
        --accounts accounts.txt --allow-ext pdf,txt --login-timeout 2 &
    python path/to/docs/examples/audit_tour.py 127.0.0.1 8080

The last step stops the server with SIGTERM (its pid is in ``twistd.pid``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from raw_client import Connection  # noqa: E402

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8080

alice, bob, carol, other = (Connection(host, port) for _ in range(4))
alice.request("login", username="alice", password="s3cret")
bob.request("login", username="bob", password="hunter2")
other.request("login", username="ALICE", password="s3cret")  # username-taken
carol.request("login", username="carol", password="guess")  # auth-failed
carol.request("login", username="carol", password="tr0ub4dor")

alice.request("join", room="groupA")
bob.request("join", room="groupA")
carol.request("join", room="groupB")
carol.request("join", room="groupA")  # a switch
bob.request("broadcast", text="hi all\nsecond line")
alice.request("whisper", to="bob", text="lunch?")  # the text is not logged

# One upload slot: carol's file waits for alice's, and has the same name.
t1 = alice.request("sendfile", to="bob", name="report.pdf", size=70_000)["transfer"]
alice.wait_for("upload-start")
t2 = carol.request("sendfile", to="bob", name="report.pdf", size=5)["transfer"]
time.sleep(0.4)
alice.send_data(t1, b"x" * 65_536)
time.sleep(0.2)
alice.send_data(t1, b"y" * (70_000 - 65_536))
carol.wait_for("upload-start")
carol.send_data(t2, b"hello")
carol.wait_for("file-delivered")

alice.send_payload(b"hello")  # bad-frame
alice.request("sendfile", to="bob", name="setup.exe", size=10)  # type not allowed
alice.request("sendfile", to="carol", name="notes.txt", size=10)
alice.wait_for("upload-start")
carol.sock.close()  # recipient-offline, connection lost
time.sleep(0.3)

bob.request("leave")
time.sleep(2.2)  # the other connection's login deadline passes
alice.request("exit")

alice = Connection(host, port)
alice.request("login", username="alice", password="s3cret")
bob.request("sendfile", to="alice", name="big.txt", size=1000)
bob.request("sendfile", to="alice", name="more.txt", size=1000)
time.sleep(0.2)
os.kill(int(Path("twistd.pid").read_text()), signal.SIGTERM)
time.sleep(1)
