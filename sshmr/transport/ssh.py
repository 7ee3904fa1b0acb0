"""``SshTransport``: one paramiko connection per host, kept for the whole run.

Every phase has a timeout (TCP connect, banner, key exchange, auth, channel open, each
SFTP call). TCP_NODELAY and SSH keepalives are on. Host keys and our own keys are checked
as OpenSSH checks them (``sshkeys``). Agent forwarding is never requested. Remote commands
are argument lists joined with ``shlex.join``.
Files are written as new files (O_EXCL, 0600) after removing what was at the path, so a
symbolic link planted in the workdir is never followed. Files move over sshmr's own SFTP
client (``sftp``), on a few sessions per host (``sftp_pool``), so transfers to and from
one host overlap.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shlex
import socket
import stat
import time

import paramiko

from ..errors import HostUnreachable
from ..inventory import Host
from .base import CHUNK, AgentStream, Transport
from .sftp import SftpSession
from .sftp_pool import SftpPool
from .sshkeys import authenticate, refuse_open_key_files, verify_host_key

STDERR_LIMIT = 8192
# paramiko logs handshake failures (e.g. sshd dropping us at MaxStartups) with a traceback
# from its own thread; sshmr reports them as one-line host errors. Without any handler,
# logging's last resort would print that traceback on stderr; an application that
# configures logging still gets paramiko's records.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class SshAgent(AgentStream):
    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def send(self, data: bytes) -> None:
        try:
            self.channel.sendall(data)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise OSError(f"channel closed: {exc}") from exc

    def recv(self) -> bytes:
        try:
            return self.channel.recv(65536)
        except (OSError, EOFError, paramiko.SSHException):
            return b""

    def stderr(self) -> str:
        data = b""
        while self.channel.recv_stderr_ready() and len(data) < STDERR_LIMIT:
            data += self.channel.recv_stderr(STDERR_LIMIT)
        return data.decode("utf-8", "replace")[-STDERR_LIMIT:]

    def exit_status(self) -> int | None:
        return self.channel.recv_exit_status() if self.channel.exit_status_ready() else None

    def close(self) -> None:
        try:
            self.channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass
        self.channel.close()


class SshTransport(Transport):
    def __init__(
        self,
        host: Host,
        known_hosts: str,
        *,
        accept_new: bool = False,
        keepalive: float = 5.0,
        op_timeout: float = 30.0,
    ) -> None:
        self.name = host.name
        self.host = host
        self.known_hosts = known_hosts
        self.accept_new = accept_new
        self.keepalive = keepalive
        self.op_timeout = op_timeout
        self._transport: paramiko.Transport | None = None
        self._jump: SshTransport | None = None
        self._pending: paramiko.Transport | None = None  # a connection being set up
        self._sftp = SftpPool(self.name, lambda: self._transport, op_timeout)
        self._home: str | None = None

    # ---------------------------------------------------------------- connect

    def connect(self) -> None:
        h = self.host
        refuse_open_key_files(h)  # before connecting, as OpenSSH refuses them
        where = f"{h.user}@{h.hostname}:{h.port}"
        sock = self._jump_channel() if h.proxy_jump else self._socket()
        t = self._pending = paramiko.Transport(sock)  # close() may abort it from now on
        opts = t.get_security_options()  # AES-GCM first: no separate MAC, about 30 % less
        opts.ciphers = tuple(sorted(opts.ciphers, key=lambda c: "-gcm@" not in c))  # CPU/MiB
        t.banner_timeout = h.connect_timeout
        t.handshake_timeout = h.connect_timeout
        t.auth_timeout = h.connect_timeout
        try:
            t.start_client(timeout=h.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            t.close()
            raise HostUnreachable(h.name, f"SSH handshake with {where} failed: {exc}") from None
        try:
            verify_host_key(t, h, self.known_hosts, self.accept_new)
            authenticate(t, h)
        except BaseException:
            t.close()
            raise
        t.set_keepalive(int(max(1, self.keepalive)))
        self._transport, self._pending = t, None

    def _socket(self) -> socket.socket:
        h = self.host
        try:
            sock = socket.create_connection((h.hostname, h.port), timeout=h.connect_timeout)
        except OSError as exc:
            raise HostUnreachable(
                h.name, f"cannot connect to {h.hostname}:{h.port} ({exc}); check the host is up"
                " and the inventory's host/port"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    def _jump_channel(self) -> paramiko.Channel:
        """ProxyJump: a direct-tcpip channel through the first jump host (same keys)."""
        h = self.host
        spec = (h.proxy_jump or "").split(",")[0]
        user, _, rest = spec.rpartition("@")
        name, _, port = rest.partition(":")
        jump = dataclasses.replace(h, name=f"{h.name} (via {spec})", hostname=name,
                                   port=int(port or 22), user=user or h.user, proxy_jump=None)
        self._jump = SshTransport(jump, self.known_hosts, accept_new=self.accept_new,
                                  keepalive=self.keepalive, op_timeout=self.op_timeout)
        self._jump.connect()
        try:
            return self._jump.transport.open_channel(
                "direct-tcpip", (h.hostname, h.port), ("127.0.0.1", 0),
                timeout=h.connect_timeout)
        except (paramiko.SSHException, OSError) as exc:
            self._jump.close()
            raise HostUnreachable(h.name, f"jump host {spec} cannot reach {h.hostname}:{h.port}:"
                                  f" {exc}") from None

    # ------------------------------------------------------------- channels

    @property
    def transport(self) -> paramiko.Transport:
        if self._transport is None or not self._transport.is_active():
            raise HostUnreachable(self.name, "connection is closed")
        return self._transport

    def _session(self) -> paramiko.Channel:
        try:
            return self.transport.open_session(timeout=self.op_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(self.name, f"cannot open an SSH channel: {exc}") from None

    def run(self, argv: list[str], timeout: float = 30.0) -> tuple[int, str, str]:
        chan = self._session()
        chan.settimeout(timeout)
        try:
            chan.exec_command(shlex.join(argv))
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while not (chan.exit_status_ready() and not chan.recv_ready()
                       and not chan.recv_stderr_ready()):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{shlex.join(argv)} took more than {timeout}s")
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                else:
                    time.sleep(0.005)
            return chan.recv_exit_status(), out.decode(errors="replace"), err.decode(
                errors="replace")
        finally:
            chan.close()

    def start_agent(self, argv: list[str]) -> AgentStream:
        chan = self._session()
        chan.exec_command(shlex.join(argv))
        return SshAgent(chan)

    # ------------------------------------------------------------------ sftp

    def _call(self, fn_name: str, *args):
        with self._sftp.session() as sftp:
            return getattr(sftp, fn_name)(*args)

    def home(self) -> str:
        if self._home is None:
            self._home = self._call("realpath", ".")
        return self._home

    @staticmethod
    def _create(sftp: SftpSession, path: str | bytes) -> bytes:
        """Open ``path`` as a new file (O_EXCL), created 0600: whatever was there is
        removed first (a planted symbolic link itself, never its target)."""
        try:
            return sftp.create(path)
        except OSError:
            try:
                sftp.remove(path)
            except OSError:
                pass
            return sftp.create(path)

    def put_bytes(self, data: bytes, path: str) -> None:
        with self._sftp.session() as sftp:  # every write's reply is checked (ENOSPC...)
            sftp.write(self._create(sftp, path), [data], path)

    def put_file(self, local_path: str, path: str) -> None:
        target = os.fsencode(path)  # a file name that is not UTF-8 keeps its bytes
        with open(local_path, "rb") as src, self._sftp.session() as sftp:
            sftp.write(self._create(sftp, target), iter(lambda: src.read(CHUNK), b""), path)

    def get_bytes(self, path: str, limit: int | None = None) -> bytes:
        out = bytearray()

        def sink(offset: int, data: memoryview) -> None:
            if offset > len(out):
                out.extend(bytes(offset - len(out)))
            out[offset:offset + len(data)] = data

        with self._sftp.session() as sftp:
            size = sftp.read(path, limit, sink)
        del out[size:]
        return bytes(out)

    def get_file(self, path: str, local_path: str, limit: int | None = None) -> None:
        with open(local_path, "wb") as dst, self._sftp.session() as sftp:
            fd = dst.fileno()
            size = sftp.read(path, limit, lambda offset, data: _pwrite(fd, data, offset))
            os.ftruncate(fd, size)

    def exists(self, path: str) -> bool:
        try:
            self._call("stat", path)
        except FileNotFoundError:
            return False
        return True

    def makedirs(self, path: str, mode: int = 0o700) -> None:
        """mkdir -p in few round trips: the common cases (an attempt's dir, whose parent
        exists; a workdir that exists) take one or two."""
        parts = path.rstrip("/").split("/")
        try:
            self._call("mkdir", path, mode)
            return
        except OSError:
            pass  # it exists already, or a parent is missing
        missing = []
        for i in range(len(parts), 1, -1):  # up to the deepest directory that exists
            sub = "/".join(parts[:i])
            try:
                st = self._call("stat", sub)
            except OSError:  # missing (or under a file: found further up)
                missing.append(sub)
                continue
            if not stat.S_ISDIR(st.st_mode or 0):
                raise NotADirectoryError(sub)
            break
        for sub in reversed(missing):
            try:
                self._call("mkdir", sub, mode)
            except OSError:
                if not self.exists(sub):
                    raise

    def mkdir_private(self, path: str) -> None:
        try:
            self._call("mkdir", path, 0o700)
            return
        except OSError as exc:
            error = exc
        try:
            st = self._call("lstat", path)
        except OSError:
            raise error from None  # e.g. the parent is missing
        if not stat.S_ISDIR(st.st_mode or 0):  # a symbolic link, even to a directory
            raise NotADirectoryError(errno.ENOTDIR, "not a directory (a symbolic link or a "
                                     "file; sshmr follows no link in its workdir)", path)

    def rename(self, src: str, dst: str) -> None:
        self._call("rename", src, dst)

    def listdir(self, path: str) -> list[str]:
        return self._call("listdir", path)

    def close(self) -> None:
        if self._pending is not None:  # abort a connect in progress (it raises at once)
            self._pending.close()
        self._sftp.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._jump is not None:
            self._jump.close()
            self._jump = None


def _pwrite(fd: int, data: memoryview, offset: int) -> None:
    while data:
        done = os.pwrite(fd, data, offset)
        data, offset = data[done:], offset + done
