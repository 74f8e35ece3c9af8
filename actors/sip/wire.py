"""Framing of the messages between a call gateway and its endpoint processes.

Each side writes msgpack maps back to back on a Unix stream socket; msgpack
is self-delimiting, so ``msgpack.Unpacker`` splits the stream without a
length prefix. Commands carry ``"op"``; events carry ``"ev"``.
"""

from __future__ import annotations

import socket
import threading

import msgpack


class MessageChannel:
    """Send and receive msgpack maps over one connected stream socket.

    ``send`` may be called from several threads (it takes a lock);
    ``receive`` and ``poll`` must stay on one thread.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._send_lock = threading.Lock()
        self._packer = msgpack.Packer()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: dict) -> None:
        """Send one message; raises ``OSError`` when the peer is gone."""
        data = msgpack.packb(message, use_bin_type=True)
        with self._send_lock:
            self.sock.sendall(data)

    def receive(self, max_bytes: int = 65536) -> list[dict] | None:
        """Block for data and return the complete messages, or ``None`` at EOF."""
        try:
            data = self.sock.recv(max_bytes)
        except ConnectionResetError:
            # The peer closed with data still unread: gone all the same.
            return None
        if not data:
            return None
        self._unpacker.feed(data)
        return list(self._unpacker)

    def poll(self) -> list[dict] | None:
        """Return the messages already waiting without blocking; ``None`` at EOF."""
        messages: list[dict] = []
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return messages
            except ConnectionResetError:
                return None
            if not data:
                return None if not messages else messages
            self._unpacker.feed(data)
            messages.extend(self._unpacker)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
