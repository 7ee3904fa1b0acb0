"""The SFTP client's reads and writes against a small in-process SFTP server that does
what OpenSSH's does not: short reads, replies out of order, a size that is not the file's.
(The client against real sshd: tests/integration/test_sftp.py.)"""

from __future__ import annotations

import struct

import pytest

from sshmr.transport import sftp
from sshmr.transport.base import TooLarge


class FakeServer:
    """A channel whose far end is an SFTP server over ``files`` (path -> bytearray)."""

    def __init__(self, files: dict[bytes, bytearray], *, short: int = 1 << 30,
                 reverse: bool = False, stat_size: int | None = None) -> None:
        self.files, self.short, self.reverse, self.stat_size = files, short, reverse, stat_size
        self.out = bytearray()
        self.handles: dict[bytes, bytes] = {}
        self.active = True
        self.requests = 0

    # the paramiko Transport and Channel calls the client makes
    def open_session(self, window_size=None, timeout=None):
        return self

    def settimeout(self, timeout):
        pass

    def invoke_subsystem(self, name):
        assert name == "sftp"

    def close(self):
        self.active = False

    def recv(self, n: int) -> bytes:
        data, self.out = bytes(self.out[:n]), self.out[n:]
        return data

    def sendall(self, data) -> None:
        data, replies = bytes(data), []
        while data:
            size = struct.unpack(">I", data[:4])[0]
            packet, data = data[4:4 + size], data[4 + size:]
            replies.append(self._handle(packet[0], packet[1:]))
        for reply in reversed(replies) if self.reverse else replies:
            self.out += struct.pack(">I", len(reply)) + reply

    def _handle(self, kind: int, body: bytes) -> bytes:
        if kind == sftp.INIT:
            return bytes([sftp.VERSION]) + struct.pack(">I", 3)
        self.requests += 1
        rid, body = body[:4], body[4:]

        def string(at: int) -> tuple[bytes, int]:
            size = struct.unpack(">I", body[at:at + 4])[0]
            return body[at + 4:at + 4 + size], at + 4 + size

        def status(code: int) -> bytes:
            return bytes([sftp.STATUS]) + rid + struct.pack(">III", code, 0, 0)

        name, at = string(0)
        if kind == sftp.OPEN:
            flags = struct.unpack(">I", body[at:at + 4])[0]
            if flags & sftp.CREAT:
                self.files[name] = bytearray()
            elif name not in self.files:
                return status(sftp.FX_NO_SUCH_FILE)
            handle = b"h%d" % len(self.handles)
            self.handles[handle] = name
            return bytes([sftp.HANDLE]) + rid + struct.pack(">I", len(handle)) + handle
        if kind == sftp.STAT:
            if name not in self.files:
                return status(sftp.FX_NO_SUCH_FILE)
            size = len(self.files[name]) if self.stat_size is None else self.stat_size
            return bytes([sftp.ATTRS]) + rid + struct.pack(">IQ", sftp.A_SIZE, size)
        if kind == sftp.READ:
            offset, length = struct.unpack(">QI", body[at:at + 12])
            data = bytes(self.files[self.handles[name]][offset:offset + min(length,
                                                                              self.short)])
            if not data:
                return status(sftp.FX_EOF)
            return bytes([sftp.DATA]) + rid + struct.pack(">I", len(data)) + data
        if kind == sftp.WRITE:
            offset = struct.unpack(">Q", body[at:at + 8])[0]
            data = string(at + 8)[0]
            target = self.files[self.handles[name]]
            target[offset:offset + len(data)] = data
            return status(sftp.FX_OK)
        if kind == sftp.CLOSE:
            del self.handles[name]
            return status(sftp.FX_OK)
        raise AssertionError(f"unexpected request {kind}")


def read(server: FakeServer, path: bytes, limit: int | None) -> bytes:
    out = bytearray()

    def sink(offset: int, data: memoryview) -> None:  # pieces may come in any order
        out.extend(bytes(max(0, offset + len(data) - len(out))))
        out[offset:offset + len(data)] = data

    session = sftp.SftpSession(server, 5.0)  # type: ignore[arg-type]
    size = session.read(path, limit, sink)
    assert not server.handles, "the file is closed"
    assert not session.broken
    return bytes(out[:size])


DATA = bytes(range(256)) * 400  # 102,400 bytes: four 32 KiB requests


@pytest.mark.parametrize("short", [1 << 30, 1000, 32767])
@pytest.mark.parametrize("reverse", [False, True])
def test_reads_whole_file_through_short_and_reordered_replies(short, reverse):
    server = FakeServer({b"f": bytearray(DATA)}, short=short, reverse=reverse)
    assert read(server, b"f", None) == DATA
    assert read(server, b"f", len(DATA)) == DATA


@pytest.mark.parametrize("told", [0, 10, 40000])
def test_a_file_longer_than_its_size_is_read_to_its_end(told):
    server = FakeServer({b"f": bytearray(DATA)}, stat_size=told)
    assert read(server, b"f", None) == DATA
    assert read(server, b"f", len(DATA)) == DATA


@pytest.mark.parametrize("told", [None, 0, 10])
def test_past_the_limit_is_too_large_whatever_its_size_says(told):
    server = FakeServer({b"f": bytearray(DATA)}, stat_size=told)
    with pytest.raises(TooLarge):
        read(server, b"f", len(DATA) - 1)
    session = sftp.SftpSession(server, 5.0)  # type: ignore[arg-type]
    with pytest.raises(TooLarge):
        session.read(b"f", 1000, lambda offset, data: None)
    assert not server.handles or session.broken  # closed, or the session is not reused


def test_a_file_too_large_by_its_size_is_not_read():
    server = FakeServer({b"f": bytearray(DATA)})
    session = sftp.SftpSession(server, 5.0)  # type: ignore[arg-type]
    with pytest.raises(TooLarge):
        session.read(b"f", 100, lambda offset, data: pytest.fail("read"))
    assert server.requests == 3 and not server.handles  # open, stat, close
    assert not session.broken


def test_missing_file_is_file_not_found_and_the_session_goes_on():
    server = FakeServer({b"f": bytearray(b"x")}, reverse=True)
    session = sftp.SftpSession(server, 5.0)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        session.read(b"nope", None, lambda offset, data: None)
    assert not session.broken
    assert session.read(b"f", 1, lambda offset, data: None) == 1


@pytest.mark.parametrize("reverse", [False, True])
def test_writes_in_pieces_then_closes(reverse):
    server = FakeServer({}, reverse=reverse)
    session = sftp.SftpSession(server, 5.0)  # type: ignore[arg-type]
    handle = session.create(b"g")
    assert session.write(handle, [DATA[:5], DATA[5:70000], b"", DATA[70000:]], b"g") == len(DATA)
    assert bytes(server.files[b"g"]) == DATA and not server.handles


def test_replies_to_requests_never_made_are_not_kept_without_bound():
    """A hostile server that answers with replies to other requests (ids never asked for),
    each as large as a packet may be, makes the session fail once what it put aside passes
    its bound, not the master hold them all."""
    server = FakeServer({b"f": bytearray(DATA)})
    session = sftp.SftpSession(server, 5.0)  # type: ignore[arg-type]
    junk = bytes(1 << 20)
    for rid in range(1000, 1100):  # 100 MiB of DATA replies for ids never used
        reply = bytes([sftp.DATA]) + struct.pack(">II", rid, len(junk)) + junk
        server.out += struct.pack(">I", len(reply)) + reply
    with pytest.raises(sftp.paramiko.SSHException, match="none to request"):
        session.stat(b"f")
    assert session.broken
    assert session._aside_bytes <= sftp.ASIDE + len(junk) + 64
    assert len(server.out) > 80 << 20, "it stopped reading once over the bound"
