"""The kernel's packet queue (nfnetlink_queue) spoken over a raw netlink socket.

An iptables `-j NFQUEUE` rule hands each matching packet to the process bound to that
queue number, which later says ACCEPT or DROP (a verdict, by packet id, in any order). The
delayer holds packets this way. Only what it needs is here: bind a queue for metadata only
(the payload never crosses into userspace), read packet ids, send verdicts.

The message layouts are the kernel's (include/uapi/linux/netfilter/nfnetlink_queue.h);
libnetfilter_queue is the C library over the same protocol.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
# GSO: loopback's 64 kB packets arrive whole instead of being cut into segments first;
# FAIL_OPEN: a packet that finds the queue full passes (undelayed) rather than being lost.
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 0x1, 0x4
NF_DROP, NF_ACCEPT = 0, 1
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NFGENMSG = struct.Struct("!BBH")  # family, version, queue number (network order)
NLATTR = struct.Struct("=HH")
MAXLEN = 65536
RCVBUF = 8 << 20


class QueueError(OSError):
    """The kernel refused a queue request; errno says why (EBUSY: taken by another)."""


def _attr(kind: int, payload: bytes) -> bytes:
    data = NLATTR.pack(NLATTR.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    found, at = {}, 0
    while at + NLATTR.size <= len(data):
        length, kind = NLATTR.unpack_from(data, at)
        if length < NLATTR.size:
            break
        found[kind & 0x3FFF] = data[at + NLATTR.size:at + length]
        at += (length + 3) & ~3
    return found


class PacketQueue:
    """One bound queue: `packets()` yields ids of held packets, `verdict()` releases one."""

    def __init__(self, number: int, *, maxlen: int = MAXLEN) -> None:
        self.number = number
        self._seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self._grow_buffer()
            self.sock.bind((0, 0))
            self._config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
            self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IBxxx", 0, NFQNL_COPY_META)))
            self._config(_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)))
            flags = struct.pack("!I", NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO)
            self._config(_attr(NFQA_CFG_FLAGS, flags) + _attr(NFQA_CFG_MASK, flags))
        except BaseException:
            self.sock.close()
            raise

    def _grow_buffer(self) -> None:
        # A burst of held packets must not overflow the socket (the kernel would drop them).
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)

    def _message(self, kind: int, body: bytes, flags: int = NLM_F_REQUEST) -> bytes:
        self._seq += 1
        head = NFGENMSG.pack(socket.AF_UNSPEC, 0, self.number)
        length = NLMSG_HDR.size + len(head) + len(body)
        msg_type = (NFNL_SUBSYS_QUEUE << 8) | kind
        return NLMSG_HDR.pack(length, msg_type, flags, self._seq, 0) + head + body

    def _config(self, body: bytes) -> None:
        """Send one config request and wait for the kernel's ack (or its errno)."""
        self.sock.send(self._message(NFQNL_MSG_CONFIG, body, NLM_F_REQUEST | NLM_F_ACK))
        while True:
            for kind, _seq, payload in self._read(self.sock.recv(RCVBUF)):
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise QueueError(code, f"queue {self.number}: {os.strerror(code)}")
                    return

    @staticmethod
    def _read(data: bytes) -> Iterator[tuple[int, int, bytes]]:
        at = 0
        while at + NLMSG_HDR.size <= len(data):
            length, kind, _flags, seq, _pid = NLMSG_HDR.unpack_from(data, at)
            if length < NLMSG_HDR.size:
                break
            yield kind, seq, data[at + NLMSG_HDR.size:at + length]
            at += (length + 3) & ~3

    def packets(self) -> list[int]:
        """Ids of the packets that one read of the socket brings (it blocks until some)."""
        try:
            data = self.sock.recv(RCVBUF)
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # the kernel dropped messages: keep going
                return []
            raise
        ids = []
        for kind, _seq, payload in self._read(data):
            if kind & 0xFF != NFQNL_MSG_PACKET:
                continue
            header = _attrs(payload[NFGENMSG.size:]).get(NFQA_PACKET_HDR)
            if header:
                ids.append(struct.unpack_from("!I", header)[0])
        return ids

    def verdict(self, packet_id: int, verdict: int = NF_ACCEPT) -> None:
        body = _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))
        self.sock.send(self._message(NFQNL_MSG_VERDICT, body))

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        # Closing the socket unbinds the queue: the kernel drops what is still held (the
        # delayer releases it first) and lets new packets pass (--queue-bypass).
        self.sock.close()
