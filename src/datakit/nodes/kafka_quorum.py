"""Ask a KRaft controller about its quorum: one DescribeQuorum request on the wire.

librdkafka has no DescribeQuorum (Java's `Admin.describeMetadataQuorum`), and a JVM per
health check is slow, so this sends the request (API key 55, version 0) to a controller
listener (over TLS with a client certificate when given a context, as the stack's are;
else PLAINTEXT on loopback) and reads the answer. Only the leader answers with the
quorum; a follower answers NOT_LEADER_OR_FOLLOWER, which is also worth knowing.
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass, field

DESCRIBE_QUORUM = 55
METADATA_TOPIC = "__cluster_metadata"
NOT_LEADER_OR_FOLLOWER = 6


@dataclass
class QuorumInfo:
    """What one controller said: `error` 0 with the quorum if it leads, else a code."""

    error: int
    leader_id: int = -1
    leader_epoch: int = -1
    high_watermark: int = -1
    voters: dict[int, int] = field(default_factory=dict)  # replica id -> log end offset
    observers: dict[int, int] = field(default_factory=dict)


def describe_quorum(host: str, port: int, *, timeout: float = 2.0,
                    context: ssl.SSLContext | None = None) -> QuorumInfo:
    """Send DescribeQuorum v0 to the controller at host:port; raise OSError if unreachable
    (a refused handshake is an ssl.SSLError, an OSError too)."""
    body = (_uvarint(2) + _compact_str(METADATA_TOPIC)  # topics: 1 entry
            + _uvarint(2) + struct.pack(">i", 0) + b"\0"  # partitions: [0]
            + b"\0" + b"\0")  # topic and request tagged fields
    client = b"datakit"
    header = struct.pack(">hhih", DESCRIBE_QUORUM, 0, 1, len(client)) + client + b"\0"
    frame = header + body
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        sock = context.wrap_socket(raw, server_hostname=host) if context else raw
    except BaseException:
        raw.close()
        raise
    with sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        return _parse(_Reader(_recv(sock, size)))


def _parse(r: _Reader) -> QuorumInfo:
    r.int32()  # correlation id
    r.tags()  # response header v1
    top_error = r.int16()
    if top_error:
        return QuorumInfo(error=top_error)
    for _ in range(r.uvarint() - 1):
        r.compact_str()
        for _ in range(r.uvarint() - 1):
            r.int32()  # partition index
            error = r.int16()
            info = QuorumInfo(error=error, leader_id=r.int32(), leader_epoch=r.int32(),
                              high_watermark=r.int64())
            info.voters = _replicas(r)
            info.observers = _replicas(r)
            r.tags()
            return info
    return QuorumInfo(error=-1)


def _replicas(r: _Reader) -> dict[int, int]:
    out = {}
    for _ in range(r.uvarint() - 1):
        replica = r.int32()
        out[replica] = r.int64()
        r.tags()
    return out


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("controller closed the connection")
        buf += chunk
    return buf


def _uvarint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def _compact_str(s: str) -> bytes:
    data = s.encode()
    return _uvarint(len(data) + 1) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, fmt: str):
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def int64(self) -> int:
        return self._take(">q")

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_str(self) -> str:
        n = self.uvarint() - 1
        s = self.data[self.pos:self.pos + max(n, 0)].decode()
        self.pos += max(n, 0)
        return s

    def tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()
