"""
A TCP relay between a client and a server, for tests that need the client's
side of a connection cut while the server's side stays open (the server
still holds the session, as when a network path dies unnoticed).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    cut: bool = False
    threads: list[threading.Thread] = field(default_factory=list)


class Relay:
    """Listens on 127.0.0.1 port 0 and relays each connection to ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.pairs: list[_Pair] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                self.pairs.append(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True)
                pair.threads.append(t)
                t.start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, pair: _Pair) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if pair.cut:
                continue  # the client is gone: what the server says is dropped
            try:
                dst.sendall(data)
            except OSError:
                if not pair.cut:
                    break
        if not pair.cut:
            for s in (pair.client, pair.upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut_clients(self) -> None:
        """Close every client's side now; the server's sides stay open."""
        with self._lock:
            pairs = [p for p in self.pairs if not p.cut]
        for pair in pairs:
            pair.cut = True
            try:
                pair.client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            pair.client.close()

    def release(self) -> None:
        """Close the server's sides of the cut connections: it notices they are gone."""
        with self._lock:
            pairs = [p for p in self.pairs if p.cut]
        for pair in pairs:
            try:
                pair.upstream.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            pair.upstream.close()

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            pairs = list(self.pairs)
        for pair in pairs:
            for s in (pair.client, pair.upstream):
                try:
                    s.close()
                except OSError:
                    pass
