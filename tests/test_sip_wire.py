"""The message channel between the gateway and its endpoint processes."""

from __future__ import annotations

import socket

from callsure.actors.sip.wire import MessageChannel


def test_reset_peer_reads_as_end_of_stream():
    # The gateway side closes while the endpoint's last message is still
    # unread, so the endpoint's next read gets a connection reset.
    gateway, endpoint = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    channel = MessageChannel(endpoint)
    channel.send({"ev": "ready"})
    gateway.close()
    assert channel.poll() is None
    assert channel.receive() is None
    channel.close()


def test_messages_cross_in_order():
    gateway, endpoint = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender, receiver = MessageChannel(gateway), MessageChannel(endpoint)
    for number in range(3):
        sender.send({"op": "stats", "request": number})
    assert [m["request"] for m in receiver.receive()] == [0, 1, 2]
    sender.close()
    assert receiver.poll() is None
    receiver.close()
