"""Hold every packet of a netfilter queue for a fixed time, then accept it (a delay line).

The kernel here has no ``netem`` qdisc. This is the substitute that ``NetnsCluster.impair``
uses for delay: iptables rules in a host's network namespace send the packets crossing its
link to NFQUEUE ``queue``; this process (started inside that namespace with ``ip netns
exec``) reads them over nfnetlink and gives each its ACCEPT verdict ``delay_ms`` after it
arrived, in arrival order. The packet itself waits in the kernel meanwhile: it is a real
per-packet delay on the wire path, not a userspace relay of the byte stream.

    python netdelay.py QUEUE DELAY_MS     # prints "ready" once bound; SIGTERM: accept all, exit

Standard library only (raw ``AF_NETLINK`` socket).
"""

from __future__ import annotations

import collections
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def _attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _message(kind: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, 0, 0) \
        + body


def _attrs(data: bytes) -> dict[int, bytes]:
    out, pos = {}, 0
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[pos + 4: pos + length]
        pos += (length + 3) & ~3
    return out


class DelayLine:
    def __init__(self, queue: int, delay: float) -> None:
        self.queue = queue
        self.delay = delay
        self.held: collections.deque[tuple[float, int]] = collections.deque()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, 0))
        self.stopping = False

    def bind(self) -> None:
        cmd = struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, socket.htons(socket.AF_INET))
        self._request(_message(NFQNL_MSG_CONFIG, self.queue, _attr(NFQA_CFG_CMD, cmd),
                               NLM_F_REQUEST | NLM_F_ACK))
        params = struct.pack(">IB", 0, NFQNL_COPY_META)
        self._request(_message(NFQNL_MSG_CONFIG, self.queue, _attr(NFQA_CFG_PARAMS, params),
                               NLM_F_REQUEST | NLM_F_ACK))

    def _request(self, msg: bytes) -> None:
        self.sock.send(msg)
        reply = self.sock.recv(65536)
        length, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", reply, 16)
            if error:
                raise OSError(-error, f"nfnetlink queue {self.queue}: configuration refused")

    def run(self) -> None:
        while not (self.stopping and not self.held):
            now = time.monotonic()
            while self.held and (self.stopping or self.held[0][0] <= now):
                self._accept(self.held.popleft()[1])
            wait = max(0.0, self.held[0][0] - now) if self.held else 0.5
            ready, _, _ = select.select([self.sock], [], [], 0 if self.stopping else wait)
            if ready:
                self._receive(self.sock.recv(1 << 20))

    def _receive(self, data: bytes) -> None:
        arrived = time.monotonic()
        pos = 0
        while pos + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, pos)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                header = _attrs(data[pos + 20: pos + length]).get(NFQA_PACKET_HDR)
                if header:
                    (packet_id,) = struct.unpack_from(">I", header)
                    self.held.append((arrived + self.delay, packet_id))
            pos += (length + 3) & ~3

    def _accept(self, packet_id: int) -> None:
        verdict = _attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, packet_id))
        self.sock.send(_message(NFQNL_MSG_VERDICT, self.queue, verdict))


def main(argv: list[str]) -> int:
    line = DelayLine(int(argv[0]), float(argv[1]) / 1000.0)

    def stop(signum: int, frame: object) -> None:
        line.stopping = True

    signal.signal(signal.SIGTERM, stop)
    line.bind()
    print("ready", flush=True)
    line.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
