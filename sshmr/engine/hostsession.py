"""One host as the master sees it: its transport, its agent channel and helper threads.

``HostSession.connect_async`` connects, prepares the workdir, pushes the code bundle and
starts the host agent on a thread of its own, then reads the agent's messages and posts
them to the master's queue. ``io`` runs file transfers (large payloads, input files,
large results) off the master's thread, on up to ``iopool.IO_THREADS`` threads at once. Every
item posted carries the session's ``generation``, so the master drops what a previous
connection said.

Items posted: ``(kind, host, generation, data)`` with kind ``connected`` (agent info),
``failed`` (an exception), ``msgs`` (the protocol messages one read brought, each checked
by ``wire``), ``violation``
(what the host said that no honest agent says), ``eof`` (why) or ``io`` (a callable's
outcome). What a host may send is bounded: a line of at most ``wire.MAX_LINE`` bytes, and
at most ``MAX_QUEUED_BYTES`` of its messages waiting in the master's queue (its reader then
waits, and TCP holds the host back), so a flooding host cannot fill the master's memory.

No agent is left behind by a race with the end of the run: a connection either lands
before ``shutdown`` begins (then ``shutdown`` tells its agent to exit) or after (then
the connecting thread tells it itself), decided under one lock; ``shutdown`` ends within
``wait`` + 1 s, inside the master's bound; and a reconnection starts only once the lost
connection is closed, so closing the old one can never cut the new one.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import HostError, RemoteSetupFailed
from ..remote import protocol
from ..transport.base import AgentStream, Transport
from .bundle import ENTRY, Bundle, push_bundle
from .cleanup import CLEANUP_PATIENCE, make_sure_removed
from .diskspace import host_write_failed
from .handshakes import handshake_gate
from .iopool import IoPool
from .wire import MAX_LINE, ProtocolViolation, check_message, host_key

READY_TIMEOUT = 30.0
CONNECT_PATIENCE = 3.0  # at shutdown, how long a connection in progress may take to land
EXIT_PATIENCE = 2.0  # an agent that did not start: how long its exit status may take
CLOSE_PATIENCE = 5.0  # a reconnection waits this long at most for the old connection to close
MAX_QUEUED_BYTES = 16 << 20  # of one host's messages waiting in the master's queue
ITEM_COST = 1024  # what a queued message costs beyond its bytes (its dict and tuple)

class HostSession:
    def __init__(self, transport: Transport, *, python: str, workdir: str, slots: int | None,
                 run_id: str, bundle: Bundle, agent_config: dict[str, Any],
                 events: queue.SimpleQueue) -> None:
        self.name = transport.name
        self.transport = transport
        self.transport_slots = slots  # from the inventory; None: the host's CPU count
        self.python = python
        self.workdir_spec = workdir
        self.run_id = run_id
        self.bundle = bundle
        self.agent_config = agent_config
        self.events = events
        self.generation = 0
        self.agent: AgentStream | None = None
        self.workdir = ""
        self.run_dir = ""
        self.last_heard = 0.0
        self.last_sent = 0.0
        self.alive = False
        self._send_lock = threading.Lock()
        self._eof = threading.Event()  # the current agent's stream ended
        self._connected = threading.Event()  # no connection attempt is in flight
        self._connected.set()
        self._closing = False
        self._cleanup = True  # what shutdown asks of an agent: remove the run dir too
        self._landing = threading.Lock()  # a connection lands before shutdown begins, or not
        self._closed = threading.Event()  # the lost connection is closed (set: none pending)
        self._closed.set()
        self._stopped_on_landing = False  # a connection landed after shutdown began
        self._io = IoPool(self.name, lambda gen, tag, outcome: self._post("io", gen,
                                                                           (tag, outcome)))
        self._room = threading.Condition()  # for this host's messages in the master's queue
        self._queued = 0  # their bytes
        self._queued_sizes: deque[int] = deque()  # of each, in queue order

    # -------------------------------------------------------------- connecting

    def connect_async(self) -> None:
        if self._closing:
            return
        self.generation += 1
        self._connected.clear()
        threading.Thread(target=self._connect_and_read, args=(self.generation,), daemon=True,
                         name=f"sshmr-host-{self.name}").start()

    def _connect_and_read(self, gen: int) -> None:
        self._closed.wait(CLOSE_PATIENCE)  # the lost connection's closer must not cut this one
        self._eof.clear()
        try:
            info = self._connect()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none raised
            self.transport.close()
            self._post("failed", gen, exc)
            return
        finally:
            self._connected.set()
        self._post("connected", gen, info)
        self._read(gen)

    def _connect(self) -> dict[str, Any]:
        t = self.transport
        gate = handshake_gate(t)
        if gate is not None:
            while not gate.acquire(timeout=0.5):
                if self._closing:
                    raise RemoteSetupFailed(self.name, "the run ended while connecting")
        try:
            t.connect()
        finally:
            if gate is not None:
                gate.release()
        workdir = self.workdir_spec
        try:
            workdir = t.expand_user(self.workdir_spec)
            t.makedirs(workdir, 0o700)
            code_dir = push_bundle(t, self.bundle, workdir)
            self.workdir = workdir
            self.run_dir = f"{workdir}/runs/{self.run_id}"
            for path in (f"{workdir}/runs", self.run_dir, f"{self.run_dir}/a"):
                t.mkdir_private(path)  # 0700; a symbolic link planted there is refused
        except HostError:
            raise
        except OSError as exc:
            size = sum(len(data) for data in self.bundle.files.values())
            full = host_write_failed(exc, t, self.python, workdir, size)
            if isinstance(full, HostError):  # its disk is full: say so, with the free space
                raise full from None
            raise RemoteSetupFailed(self.name, f"cannot prepare workdir {self.workdir_spec!r}: "
                                    f"{exc}; fix workdir in the inventory") from None
        if self._closing:
            raise RemoteSetupFailed(self.name, "the run ended while connecting")
        config = dict(self.agent_config, run_dir=self.run_dir,
                      target=self.bundle.target_config(code_dir))
        key = config.pop("result_key", None)  # sent over the channel, never in argv
        argv = [self.python, "-u", f"{code_dir}/{ENTRY}", json.dumps(config)]
        agent = t.start_agent(argv)
        first = self._first_line(agent)
        try:
            msg = protocol.decode(first)
        except (ValueError, RecursionError):
            msg = {}
        if msg.get("t") == "ready":
            try:
                msg = check_message(msg)
            except ProtocolViolation as exc:
                agent.close()
                raise RemoteSetupFailed(self.name, f"protocol violation: {exc}") from None
        else:
            status = _exit_status(agent, EXIT_PATIENCE)
            err = (agent.stderr().strip() or first.decode(errors="replace").strip())[-300:]
            hint = ""
            if status == 127 or "not found" in err or "No such file" in err:
                hint = f"; is {self.python!r} installed? set python: in the inventory"
            raise RemoteSetupFailed(self.name, f"the sshmr agent did not start (exit {status}):"
                                    f" {err or 'no output'}{hint}")
        if key:  # before any "start": every worker forked gets it; one key per host
            agent.send(protocol.encode({"t": "key", "k": host_key(key, self.name).hex()}))
        with self._landing:
            landed = not self._closing
            if landed:
                self.agent = agent
                # The master's silence check reads last_heard as soon as alive is set, possibly
                # before it has seen "connected": never let it see a stale (or zero) value.
                self.last_heard = self.last_sent = time.monotonic()
                self.alive = True
        if not landed:  # shutdown began meanwhile and does not know this agent: stop it here
            self._stop_agent(agent, self._cleanup, READY_TIMEOUT / 3)
            self._stopped_on_landing = True
            raise RemoteSetupFailed(self.name, "the run ended while connecting")
        return msg

    @staticmethod
    def _first_line(agent: AgentStream) -> bytes:
        result: list[bytes] = []

        def read() -> None:
            buf = b""
            while b"\n" not in buf and len(buf) <= MAX_LINE:
                chunk = agent.recv()
                if not chunk:
                    break
                buf += chunk
            result.append(buf)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(READY_TIMEOUT)
        if not result:
            agent.close()
            return b""
        line, _, rest = result[0].partition(b"\n")
        agent.leftover = rest  # type: ignore[attr-defined]
        return line

    def _read(self, gen: int) -> None:
        """Read the agent's lines; post what one read brought as one ``msgs`` item (a list
        of checked messages): one queue item and one wake-up per read, not per message."""
        agent = self.agent
        assert agent is not None
        buf = getattr(agent, "leftover", b"")
        while True:
            *lines, buf = buf.split(b"\n")
            batch: list[dict[str, Any]] = []
            size = 0
            why = None
            for line in lines:
                if not line:
                    continue
                try:
                    batch.append(check_message(protocol.decode(line)))
                except (ValueError, RecursionError) as exc:
                    why = str(exc) if isinstance(exc, ProtocolViolation) else (
                        f"garbled message from the agent: {line[:100]!r}")
                    break
                size += len(line) + ITEM_COST
            if batch and not self._closing:  # closing: the master reads no more
                if not self._take(size, gen):
                    if not self._closing:
                        return  # this connection is over
                else:
                    self._post("msgs", gen, batch)
            if why is not None:  # what came before it is posted: it was said first
                self._eof.set()
                self._post("violation", gen, why)
                return
            if len(buf) > MAX_LINE:
                self._eof.set()
                self._post("violation", gen, f"a message longer than {MAX_LINE} bytes")
                return
            chunk = agent.recv()
            if not chunk:
                break
            buf += chunk
        self._eof.set()
        err = agent.stderr().strip()
        why = "connection to the agent closed" + (f": {err[-300:]}" if err else "")
        self._post("eof", gen, why)

    def _take(self, size: int, gen: int) -> bool:
        """Room in the master's queue for a message of ``size`` bytes: wait for it while
        this host has ``MAX_QUEUED_BYTES`` there already. False: stop reading."""
        with self._room:
            while self._queued and self._queued + size > MAX_QUEUED_BYTES:
                if self._closing or gen != self.generation:
                    return False
                self._room.wait(0.5)
            self._queued += size
            self._queued_sizes.append(size)
        return True

    def consumed(self) -> None:
        """The master took one of this host's ``msgs`` items off its queue."""
        with self._room:
            self._queued -= self._queued_sizes.popleft()
            self._room.notify()

    def _post(self, kind: str, gen: int, data: Any) -> None:
        self.events.put((kind, self.name, gen, data))

    # ------------------------------------------------------------------ using

    def send(self, data: bytes) -> bool:
        """Send raw protocol bytes; False if the channel is gone (an ``eof`` follows)."""
        agent = self.agent
        if agent is None or not self.alive:
            return False
        try:
            with self._send_lock:
                agent.send(data)
        except OSError:
            return False
        return True

    def io(self, fn: Callable[[], Any], tag: Any) -> None:
        """Run ``fn`` on one of this host's I/O threads (``iopool``); post ``io`` with
        (tag, result or exception)."""
        self._io.submit(self.generation, fn, tag)

    def lost(self) -> None:
        """Forget the connection (the host is down); later items are stale."""
        self.alive = False
        self.generation += 1
        agent, self.agent = self.agent, None
        if agent is not None:
            self._closed.clear()
            threading.Thread(target=self._close_quietly, args=(agent,), daemon=True).start()

    def _close_quietly(self, agent: AgentStream) -> None:
        try:
            self.transport.close()  # the agent sees EOF (over SSH, closing this is enough)
        finally:
            self._closed.set()
        try:
            agent.close()
        except Exception:  # noqa: BLE001 - the host is already gone
            pass

    def _stop_agent(self, agent: AgentStream, cleanup: bool, wait: float) -> None:
        """Tell ``agent`` to stop its workers and exit, wait for its EOF, disconnect."""
        try:
            agent.send(protocol.encode({"t": "exit", "cleanup": cleanup}))
        except OSError:
            pass

        def drain() -> None:
            while agent.recv():
                pass

        _bounded(drain, wait)
        _bounded(agent.close, 1.0)
        self.transport.close()

    def shutdown(self, cleanup: bool, wait: float = 10.0) -> str | None:
        """Ask the agent to stop every worker (and remove the run dir), then disconnect.

        With ``cleanup``, the run dir of a host still connected is then checked, and removed
        by the master once no agent of the run holds it (over a slow link the agent's own
        removal may not have happened yet). A host lost during the run is not reached again
        (it may be down for good, or frozen): its cut-off agent exits without removing the
        dir, so it may be left. Returns None, or what to tell the user about the dir.
        Returns within ``wait`` + ``CLEANUP_PATIENCE`` + 1 s, even for a host that hangs.
        """
        deadline = time.monotonic() + wait
        with self._landing:
            self._closing = True
            self._cleanup = cleanup
        # A connection in flight: let it land (then it stops its own agent, see _connect),
        # but abort one that hangs, e.g. to a frozen host (what it left is for ``sshmr gc``).
        if not self._connected.wait(min(CONNECT_PATIENCE, wait)):
            self.transport.close()
            self._connected.wait(max(0.0, deadline - time.monotonic()))
        self._io.stop()  # each I/O thread ends
        agent = self.agent
        kept = None
        if agent is not None and self.alive:
            self.send(protocol.encode({"t": "exit", "cleanup": cleanup}))
            # the agent has stopped its workers and exited
            self._eof.wait(max(0.0, deadline - time.monotonic()))
            _bounded(agent.close, max(1.0, deadline - time.monotonic()))
            if cleanup:
                kept = make_sure_removed(self.transport, self.python, self.run_dir,
                                         max(deadline, time.monotonic()) + CLEANUP_PATIENCE)
        elif cleanup and self.run_dir and not self._stopped_on_landing:
            kept = (f"{self.name} was lost during the run: its run directory {self.run_dir}"
                    " may be left there; 'sshmr gc' removes it")
        self.alive = False
        self.agent = None
        self.transport.close()
        return kept


def _exit_status(agent: AgentStream, patience: float) -> int | None:
    """The agent's exit status; over SSH it may arrive just after its stdout closes."""
    deadline = time.monotonic() + patience
    while (status := agent.exit_status()) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return status


def _bounded(fn: Callable[[], Any], timeout: float) -> None:
    """Run ``fn`` on a daemon thread; give up waiting for it after ``timeout`` s."""
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    thread.join(timeout)
