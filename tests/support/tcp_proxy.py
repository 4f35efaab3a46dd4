"""A TCP proxy that can cut every connection through it, for watch-stream faults.

Between the operator and kube-apiserver it plays the load balancer or network
that drops long-lived connections: ``cut()`` resets what is open and refuses
new connections until ``restore()``. TLS passes through untouched (the
apiserver's certificate names 127.0.0.1, which the proxy also listens on).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from urllib.parse import urlsplit


class CuttableProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream if "//" in upstream else f"//{upstream}")
        self.upstream = (parts.hostname or "127.0.0.1", int(parts.port or 443))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self.connections = 0  # accepted and forwarded, over the proxy's life
        self.refused = 0  # accepted and reset while cut
        threading.Thread(target=self._accept, daemon=True, name="proxy accept").start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> int:
        """Reset every open connection and refuse new ones; how many were open."""
        self._cut.set()
        with self._lock:
            victims, self._open = self._open, set()
        for sock in victims:
            _reset(sock)
        return len(victims) // 2

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            self.connections += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True,
                                 name="proxy pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a dropped connection looks to the peer."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
