"""The SFTP sessions of one host's SSH connection: up to ``SFTP_SESSIONS`` at once, so
transfers to and from the host overlap (fewer if its sshd takes fewer: MaxSessions).

A caller holds a session for one operation (``session()``); it goes back to the pool
unless an error left it out of step with its server (replies still due, a dropped
channel): then it is closed. A connection dropped mid-transfer (paramiko raises EOFError
or SSHException for that) comes out as ConnectionResetError: an OSError, like every other
transfer failure callers handle.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Callable, Iterator

import paramiko

from ..errors import HostUnreachable
from .base import clean_error
from .sftp import SftpSession

SFTP_SESSIONS = 4  # per host: transfers to and from it run side by side


class SftpPool:
    def __init__(self, name: str, connection: Callable[[], paramiko.Transport | None],
                 op_timeout: float) -> None:
        """``connection()``: the host's paramiko Transport, None while not connected."""
        self.name = name
        self.connection = connection
        self.op_timeout = op_timeout
        self.idle: list[SftpSession] = []  # of the current connection, not in use
        self.open = 0  # sessions open, in use or idle
        self.most = SFTP_SESSIONS
        self._ready = threading.Condition()

    def _acquire(self) -> SftpSession:
        """An idle session of the connection, or a new one while fewer than ``most`` are
        open; else wait for one."""
        while True:
            with self._ready:
                while True:
                    transport = self.connection()
                    if transport is None:
                        raise HostUnreachable(self.name, "connection is closed")
                    if not transport.is_active():
                        raise self.dropped("the connection is down")  # as mid-transfer
                    while self.idle:
                        session = self.idle.pop()
                        if session.transport is transport and session.chan.active:
                            return session
                        self.open -= 1
                        session.close()
                    if self.open < self.most:
                        self.open += 1
                        break
                    self._ready.wait(1.0)
            try:
                return SftpSession(transport, self.op_timeout)
            except paramiko.SSHException:  # ChannelException, or its race: no reason given
                with self._ready:
                    self.open -= 1
                    self._ready.notify()
                    if not self.open or not transport.is_active():
                        raise
                    self.most = self.open  # the host takes no more: share those open
            except BaseException:
                with self._ready:
                    self.open -= 1
                    self._ready.notify()
                raise

    def _release(self, session: SftpSession, keep: bool) -> None:
        with self._ready:
            if keep and session.transport is self.connection():
                session.trim()
                self.idle.append(session)
            else:
                self.open -= 1
                session.close()
            self._ready.notify()

    @contextlib.contextmanager
    def session(self) -> Iterator[SftpSession]:
        """A session for one caller's operation."""
        try:
            session = self._acquire()
        except (EOFError, paramiko.SSHException) as exc:
            raise self.dropped(exc) from exc
        keep = False
        try:
            yield session
            keep = True
        except (EOFError, paramiko.SSHException) as exc:
            raise self.dropped(exc) from exc
        except BaseException as exc:
            keep = not session.broken and clean_error(exc)
            raise
        finally:
            self._release(session, keep)

    def dropped(self, exc: BaseException | str) -> ConnectionResetError:
        return ConnectionResetError(errno.ECONNRESET, f"connection to {self.name} lost during"
                                    f" SFTP: {exc or type(exc).__name__}")

    def close(self) -> None:
        """Close the idle sessions; those in use are closed as they come back."""
        with self._ready:
            idle, self.idle = self.idle, []
            self.open -= len(idle)
        for session in idle:
            session.close()
