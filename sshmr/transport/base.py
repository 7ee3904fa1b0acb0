"""The transport interface: the only way the master touches a host.

A transport gives file operations on the host (the SFTP subset sshmr needs), a one-shot
command runner, and ``start_agent``, which returns the byte stream of a long-lived
process (the host agent). ``LocalTransport`` implements it with the local filesystem and
subprocesses; ``SshTransport`` with one paramiko connection and a few SFTP sessions.
Commands are always argument lists; a transport quotes them for the remote shell.
Below the workdir nothing is written through a symbolic link: ``put_*`` replace whatever
is at the path (a planted link is removed, never followed), ``mkdir_private`` refuses one.
What a host sends can be bounded: ``get_bytes``/``get_file`` with ``limit`` read at most
that many bytes and raise ``TooLarge`` (an OSError) if the file holds more.
"""

from __future__ import annotations

import abc
import errno
from typing import IO

CHUNK = 1 << 20


class TooLarge(OSError):
    """A host's file holds more bytes than it was said to."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(errno.EFBIG, f"more than the {limit} bytes it was said to hold", path)


def status_error(code: int, text: str) -> OSError:
    """The error an SFTP status says, as paramiko's client raises it; marked
    ``sftp_status``: the session that got it is still in step (``clean_error``)."""
    if code == 2:  # SSH_FX_NO_SUCH_FILE
        exc: OSError = FileNotFoundError(errno.ENOENT, text or "No such file")
    elif code == 3:  # SSH_FX_PERMISSION_DENIED
        exc = PermissionError(errno.EACCES, text or "Permission denied")
    else:
        exc = OSError(text or f"SFTP status {code}")
    exc.sftp_status = code  # type: ignore[attr-defined]
    return exc


def clean_error(exc: BaseException) -> bool:
    """Did ``exc`` leave an SFTP session in step (an error status, a file too large)?"""
    return isinstance(exc, TooLarge) or hasattr(exc, "sftp_status")


def read_limited(f: IO[bytes], path: str, limit: int | None) -> bytes:
    """All of ``f``, or TooLarge if it holds more than ``limit`` bytes."""
    if limit is None:
        return f.read()
    data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(path, limit)
    return data


def copy_limited(src: IO[bytes], dst: IO[bytes], path: str, limit: int | None) -> None:
    """Copy ``src`` to ``dst`` in chunks; TooLarge past ``limit`` bytes."""
    copied = 0
    for chunk in iter(lambda: src.read(CHUNK), b""):
        copied += len(chunk)
        if limit is not None and copied > limit:
            raise TooLarge(path, limit)
        dst.write(chunk)


class AgentStream(abc.ABC):
    """A running agent: bytes to its stdin, bytes from its stdout."""

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        """Write all of ``data``; raises OSError if the stream is closed."""

    @abc.abstractmethod
    def recv(self) -> bytes:
        """Block for the next chunk of stdout; ``b""`` at end of stream."""

    @abc.abstractmethod
    def stderr(self) -> str:
        """What the process wrote to stderr so far (bounded), for error messages."""

    @abc.abstractmethod
    def exit_status(self) -> int | None:
        """The exit status once the process has ended, else None."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the stream; the agent sees EOF and winds down."""


class Transport(abc.ABC):
    """One host. Methods may be called from several threads."""

    name: str
    local = False

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection (raises a HostError subclass on failure)."""

    @abc.abstractmethod
    def home(self) -> str:
        """The absolute home directory on the host (to expand ``~`` in workdirs)."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes, path: str) -> None: ...

    @abc.abstractmethod
    def put_file(self, local_path: str, path: str) -> None: ...

    @abc.abstractmethod
    def get_bytes(self, path: str, limit: int | None = None) -> bytes:
        """The host's file ``path``; TooLarge if it holds more than ``limit`` bytes."""

    def get_file(self, path: str, local_path: str, limit: int | None = None) -> None:
        """Copy the host's file ``path`` to ``local_path``, streamed (bounded memory);
        TooLarge past ``limit`` bytes."""
        with open(local_path, "wb") as f:
            f.write(self.get_bytes(path, limit))

    @abc.abstractmethod
    def exists(self, path: str) -> bool: ...

    @abc.abstractmethod
    def makedirs(self, path: str, mode: int = 0o700) -> None:
        """mkdir -p; every directory it creates gets ``mode``."""

    @abc.abstractmethod
    def mkdir_private(self, path: str) -> None:
        """Create the directory ``path`` (0700; its parent exists). An existing directory
        is fine; a symbolic link (even to a directory) or a file is refused with OSError."""

    @abc.abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Rename; raises OSError if ``dst`` exists."""

    @abc.abstractmethod
    def listdir(self, path: str) -> list[str]: ...

    @abc.abstractmethod
    def run(self, argv: list[str], timeout: float = 30.0) -> tuple[int, str, str]:
        """Run a command to completion: (exit status, stdout, stderr)."""

    @abc.abstractmethod
    def start_agent(self, argv: list[str]) -> AgentStream: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def expand_user(self, path: str) -> str:
        """``~`` or ``~/x`` on the host -> its absolute home (+ ``/x``)."""
        if path == "~" or path.startswith("~/"):
            return self.home() + path[1:]
        return path

    def rmtree(self, path: str) -> None:
        self.run(["rm", "-rf", "--", path])
