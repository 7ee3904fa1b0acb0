"""A small SFTP (version 3) client on one paramiko channel, made for bulk transfers.

paramiko's own ``SFTPClient`` spends most of a download's CPU on copies that grow with the
data buffered (its reader takes 4 bytes, then the rest, off the channel's buffer, moving
what is left each time; its file object appends to a bytes buffer), and sends a pipelined
write's packets half full. Here the channel is read in large pieces and parsed in place,
a file's reads (and writes) are pipelined with large requests (up to what the server
says it takes: OpenSSH's ``limits@openssh.com``), every write's reply is checked, and
data goes straight to its destination. Replies are matched to requests by id (OpenSSH
answers in order; others' early replies are put aside, up to ``ASIDE`` bytes). One thread
uses a session at a time (the caller holds it); ``SshTransport`` keeps a few per host.

Errors are those of paramiko's client: ``FileNotFoundError``/``PermissionError`` for those
statuses, ``OSError`` with the server's text for the others; a closed channel raises
``EOFError``, a garbled reply ``SSHException`` (the caller makes both a
``ConnectionResetError``).
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paramiko

from .base import TooLarge, clean_error, status_error

INIT, VERSION, OPEN, CLOSE, READ, WRITE, LSTAT = 1, 2, 3, 4, 5, 6, 7
OPENDIR, READDIR, REMOVE, MKDIR, REALPATH, STAT, RENAME = 11, 12, 13, 14, 16, 17, 18
STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED, EXTENDED_REPLY = 101, 102, 103, 104, 105, 200, 201
FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED = 0, 1, 2, 3
READ_FLAG, WRITE_FLAG, CREAT, EXCL = 0x01, 0x02, 0x08, 0x20
A_SIZE, A_UIDGID, A_PERMISSIONS, A_ACMODTIME, A_EXTENDED = 1, 2, 4, 8, 0x80000000

BASE_REQUEST = 32768  # every server takes reads and writes of this size
MAX_REQUEST = 256 * 1024  # ours, whatever the server takes
IN_FLIGHT = 4 << 20  # bytes of reads (or writes) requested and not yet answered
WINDOW = 8 << 20  # the channel's receive window
RECV = 4 << 20  # bytes taken off the channel at once
ASIDE = 2 * IN_FLIGHT  # bytes of early replies kept (an honest server's: under IN_FLIGHT)
SEND = 1 << 20  # bytes of requests given to the channel at once
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HEAD = struct.Struct(">IBI")  # length, type, request id


@dataclass
class Attrs:
    st_size: int | None = None
    st_mode: int | None = None


def _string(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def _path(path: str | bytes) -> bytes:
    return _string(os.fsencode(path))


class SftpSession:
    """One SFTP session (one channel) of a connected paramiko ``Transport``."""

    def __init__(self, transport: paramiko.Transport, timeout: float) -> None:
        self.transport = transport
        self.broken = False  # replies may be on their way that nobody will read: not reusable
        self._next_id = 1
        self._buf = bytearray()  # what came from the server; parsed from _pos on
        self._pos = 0
        self._aside: dict[int, bytes] = {}  # replies that came before the one waited for
        self._aside_bytes = 0
        chan = self.chan = transport.open_session(window_size=WINDOW, timeout=timeout)
        try:
            chan.settimeout(timeout)
            chan.invoke_subsystem("sftp")
            chan.sendall(struct.pack(">IBI", 5, INIT, 3))
            kind, start, end = self._packet()
            if kind != VERSION:
                raise paramiko.SSHException(f"SFTP: expected a version, got type {kind}")
            self.read_size = self.write_size = BASE_REQUEST
            at, names = start + 4, set()  # the version, then its extensions' names and data
            while at < end:
                name, at = self._str(at)
                names.add(name)
                at = self._str(at)[1]
            if b"limits@openssh.com" in names:
                self._limits()
        except BaseException:
            chan.close()
            raise

    # ------------------------------------------------------------- packets

    def _fill(self) -> None:
        self.trim()
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        data = self.chan.recv(RECV)
        if not data:
            raise EOFError("the SFTP channel closed")
        self._buf += data

    def _packet(self) -> tuple[int, int, int]:
        """The next packet: (type, start, end) of its body (after the type) in ``_buf``,
        valid until the next call."""
        while len(self._buf) - self._pos < 5:
            self._fill()
        size = _U32.unpack_from(self._buf, self._pos)[0]
        if size > 1 << 24 or size < 1:
            raise paramiko.SSHException(f"SFTP: a packet of {size} bytes")
        while len(self._buf) - self._pos < 4 + size:
            self._fill()
        start = self._pos + 5
        self._pos += 4 + size
        return self._buf[start - 1], start, self._pos

    def _head(self, kind: int, size: int) -> tuple[int, bytes]:
        rid = self._next_id
        self._next_id = (rid + 1) & 0xFFFFFFFF or 1
        return rid, _HEAD.pack(size + 5, kind, rid)

    def _send(self, parts: list[bytes | memoryview]) -> None:
        self.chan.sendall(memoryview(b"".join(parts)))

    def _reply(self, rid: int) -> tuple[int, int, int]:
        """The reply to request ``rid``: (type, start, end) of what follows its id. OpenSSH
        answers in order; a server that does not has the others' replies put aside."""
        if rid in self._aside:  # back in front of what is still to be read
            self._buf[self._pos:self._pos] = early = self._aside.pop(rid)
            self._aside_bytes -= len(early)
        while True:
            kind, start, end = self._packet()
            got = _U32.unpack_from(self._buf, start)[0]
            if got == rid:
                return kind, start + 4, end
            self._aside[got] = bytes(self._buf[start - 5:end])  # (counted twice if repeated)
            self._aside_bytes += end - start + 5
            if len(self._aside) > 4096 or self._aside_bytes > ASIDE:  # a server gone wrong:
                self.broken = True  # it must not make the master hold what it sends
                raise paramiko.SSHException(f"SFTP: {self._aside_bytes} bytes of replies to"
                                            f" other requests and none to request {rid}")

    def _call(self, kind: int, body: bytes, path: str | bytes | None = None,
              eof_ok: bool = False) -> tuple[int, int, int]:
        rid, head = self._head(kind, len(body))
        self._send([head, body])
        reply = self._reply(rid)
        if reply[0] == STATUS and not (
                eof_ok and _U32.unpack_from(self._buf, reply[1])[0] == FX_EOF):
            self._check(reply[1], path)
        return reply

    def _check(self, at: int, path: str | bytes | None) -> None:
        """Raise the error a STATUS body at ``at`` says, if any."""
        code = _U32.unpack_from(self._buf, at)[0]
        if code == FX_OK:
            return
        size = _U32.unpack_from(self._buf, at + 4)[0]
        text = bytes(self._buf[at + 8:at + 8 + size]).decode("utf-8", "replace")
        raise status_error(code, text)

    def _str(self, at: int) -> tuple[bytes, int]:
        size = _U32.unpack_from(self._buf, at)[0]
        return bytes(self._buf[at + 4:at + 4 + size]), at + 4 + size

    def _limits(self) -> None:
        kind, at, _ = self._call(EXTENDED, _string(b"limits@openssh.com"))
        if kind == EXTENDED_REPLY:
            _, read, write, _ = struct.unpack_from(">QQQQ", self._buf, at)
            self.read_size = max(BASE_REQUEST, min(read or BASE_REQUEST, MAX_REQUEST))
            self.write_size = max(BASE_REQUEST, min(write or BASE_REQUEST, MAX_REQUEST))

    def _attrs(self, at: int) -> tuple[Attrs, int]:
        """The attributes at ``at``, and where they end."""
        flags = _U32.unpack_from(self._buf, at)[0]
        at += 4
        a = Attrs()
        if flags & A_SIZE:
            a.st_size = _U64.unpack_from(self._buf, at)[0]
            at += 8
        at += 8 * bool(flags & A_UIDGID)
        if flags & A_PERMISSIONS:
            a.st_mode = _U32.unpack_from(self._buf, at)[0]
            at += 4
        at += 8 * bool(flags & A_ACMODTIME)
        if flags & A_EXTENDED:
            at += 4
            for _ in range(2 * _U32.unpack_from(self._buf, at - 4)[0]):
                at = self._str(at)[1]
        return a, at

    def _expect(self, reply: tuple[int, int, int], kind: int) -> int:
        if reply[0] != kind:
            self.broken = True
            raise paramiko.SSHException(f"SFTP: expected reply type {kind}, got {reply[0]}")
        return reply[1]

    # ------------------------------------------------------------ requests

    def realpath(self, path: str) -> str:
        at = self._expect(self._call(REALPATH, _path(path), path), NAME)
        return self._str(at + 4)[0].decode("utf-8", "surrogateescape")

    def stat(self, path: str | bytes, kind: int = STAT) -> Attrs:
        return self._attrs(self._expect(self._call(kind, _path(path), path), ATTRS))[0]

    def lstat(self, path: str | bytes) -> Attrs:
        return self.stat(path, LSTAT)

    def mkdir(self, path: str, mode: int) -> None:
        self._call(MKDIR, _path(path) + struct.pack(">II", A_PERMISSIONS, mode), path)

    def remove(self, path: str | bytes) -> None:
        self._call(REMOVE, _path(path), path)

    def rename(self, src: str, dst: str) -> None:
        self._call(RENAME, _path(src) + _path(dst), src)

    def listdir(self, path: str) -> list[str]:
        handle = self._handle(self._call(OPENDIR, _path(path), path))
        names: list[str] = []
        try:
            while True:
                reply = self._call(READDIR, _string(handle), path, eof_ok=True)
                if reply[0] == STATUS:
                    break  # the end (an error was raised)
                at = self._expect(reply, NAME)
                count = _U32.unpack_from(self._buf, at)[0]
                at += 4
                for _ in range(count):
                    name, at = self._str(at)
                    _, at = self._str(at)  # the long name
                    at = self._attrs(at)[1]
                    text = name.decode("utf-8", "surrogateescape")
                    if text not in (".", ".."):
                        names.append(text)
        finally:
            self._call(CLOSE, _string(handle), path)
        return names

    def _handle(self, reply: tuple[int, int, int]) -> bytes:
        return self._str(self._expect(reply, HANDLE))[0]

    # ------------------------------------------------------------- files

    def create(self, path: str | bytes, mode: int = 0o600) -> bytes:
        """A handle on ``path`` opened as a new file (O_EXCL), created with ``mode``."""
        body = _path(path) + struct.pack(">III", WRITE_FLAG | CREAT | EXCL, A_PERMISSIONS, mode)
        return self._handle(self._call(OPEN, body, path))

    def write(self, handle: bytes, chunks: Iterable[bytes], path: str | bytes) -> int:
        """Write ``chunks`` one after the other from offset 0, pipelined, then close the
        handle. Every write's reply is checked. Returns the bytes written."""
        h = _string(handle)
        offset = queued = 0
        waiting: deque[int] = deque()
        parts: list[bytes | memoryview] = []
        step = self.write_size
        try:
            for chunk in chunks:
                with memoryview(chunk) as view:
                    for i in range(0, len(view), step):
                        piece = view[i:i + step]
                        rid, head = self._head(WRITE, len(h) + 12 + len(piece))
                        parts += (head, h, _U64.pack(offset), _U32.pack(len(piece)), piece)
                        waiting.append(rid)
                        offset += len(piece)
                        queued += len(piece)
                        if queued >= SEND:  # full SSH packets, few copies
                            self._send(parts)
                            parts.clear()
                            queued = 0
                        while len(waiting) * step > IN_FLIGHT:
                            self._status(waiting.popleft(), path)
                    if parts:  # before the views go
                        self._send(parts)
                        parts.clear()
                        queued = 0
            rid, head = self._head(CLOSE, len(h))
            self._send([head, h])  # after the writes: a server answers in order
            waiting.append(rid)
            while waiting:
                self._status(waiting.popleft(), path)
        except BaseException:
            self.broken = bool(waiting)
            raise
        return offset

    def _status(self, rid: int, path: str | bytes) -> None:
        self._check(self._expect(self._reply(rid), STATUS), path)

    def read(self, path: str | bytes, limit: int | None, sink: Callable[[int, memoryview], None]
             ) -> int:
        """Read the file at ``path`` to ``sink(offset, data)``, pipelined, and return its
        size. TooLarge before any read if the server says it holds more than ``limit``
        bytes, and as soon as a byte past ``limit`` arrives. Reads are requested up to the
        size the server gives, then one at a time to the end of the file."""
        name = _path(path)
        rid_open, head_open = self._head(OPEN, len(name) + 8)
        rid_stat, head_stat = self._head(STAT, len(name))
        self.broken = True  # until both replies are in
        self._send([head_open, name, struct.pack(">II", READ_FLAG, 0), head_stat, name])
        opened = self._reply(rid_open)
        if opened[0] == STATUS:
            self._reply(rid_stat)
            self.broken = False
            self._check(opened[1], path)
        handle = _string(self._handle(opened))
        kind, at, _ = self._reply(rid_stat)
        self.broken = False
        size = (self._attrs(at)[0].st_size if kind == ATTRS else None) or 0
        try:
            if limit is not None and size > limit:
                raise TooLarge(os.fsdecode(path), limit)
            end = self._read_handle(handle, size, limit, sink, path)
        except BaseException as exc:
            if self.broken or not clean_error(exc):
                self.broken = True
                raise
            self._call(CLOSE, handle, path)
            raise
        self._call(CLOSE, handle, path)
        return end

    def _read_handle(self, h: bytes, size: int, limit: int | None,
                     sink: Callable[[int, memoryview], None], path: str | bytes) -> int:
        cap = limit + 1 if limit is not None else 1 << 62  # never ask past one byte too many
        step = self.read_size
        todo: deque[tuple[int, int, bool]] = deque(  # (offset, length, probe) to ask for
            (offset, min(step, size - offset), False) for offset in range(0, min(size, cap), step))
        todo.append((min(size, cap), min(step, cap - min(size, cap)), True))  # the end?
        waiting: deque[tuple[int, int, int, bool]] = deque()  # (id, offset, length, probe)
        eof = cap
        try:
            while todo or waiting:
                parts: list[bytes | memoryview] = []
                while todo and len(waiting) * step < IN_FLIGHT:
                    offset, length, probe = todo.popleft()
                    if offset < eof and length > 0:
                        rid, head = self._head(READ, len(h) + 12)
                        parts += (head, h, _U64.pack(offset), _U32.pack(length))
                        waiting.append((rid, offset, length, probe))
                if parts:
                    self._send(parts)
                if not waiting:
                    break
                rid, offset, length, probe = waiting.popleft()
                kind, at, _ = self._reply(rid)
                if kind == STATUS:
                    if _U32.unpack_from(self._buf, at)[0] != FX_EOF:
                        self._check(at, path)
                    eof = min(eof, offset)
                    continue
                got = _U32.unpack_from(self._buf, self._expect((kind, at, 0), DATA))[0]
                if got > length:
                    raise paramiko.SSHException(f"SFTP: {got} bytes for a read of {length}")
                if not got:  # as good as its end
                    eof = min(eof, offset)
                if offset >= eof:
                    continue
                if limit is not None and offset + got > limit:
                    raise TooLarge(os.fsdecode(path), limit)
                with memoryview(self._buf) as view, view[at + 4:at + 4 + got] as data:
                    sink(offset, data)
                if probe:  # the file goes on: ask for what follows
                    todo.append((offset + got, min(step, cap - offset - got), True))
                elif got < length:  # a short read: ask for the rest
                    todo.appendleft((offset + got, length - got, False))
        except BaseException as exc:
            self.broken = bool(waiting) or not clean_error(exc)
            raise
        return eof

    def trim(self) -> None:
        """Let go of the buffer once all of it is read (it grows to megabytes)."""
        if self._pos >= len(self._buf):
            self._buf, self._pos = bytearray(), 0

    def close(self) -> None:
        self.chan.close()

