"""A cluster of real OpenSSH ``sshd`` processes on loopback addresses, for tests.

Each "host" is one ``sshd -D`` listening on its own 127.0.0.x address and free port,
with its own ed25519 host key, accepting only the cluster's ed25519 client key for
the current user. Everything (keys, configs, logs, work dirs) lives under ``root``::

    with SshdCluster(tmp_path, n_hosts=4) as cluster:
        cluster.inventory      # sshmr inventory YAML for the cluster
        cluster.kill_host(1)   # SIGKILL h1's sshd and everything started through it
        cluster.start_host(1)  # bring h1 back on the same address/port/host key
        cluster.descendants()  # [(pid, cmdline)] of processes still running "on" hosts

Every session started through host ``i`` gets ``SSHD_CLUSTER_TAG=<cluster id>-h<i>`` in
its environment (sshd ``SetEnv``), so processes that daemonize out of the sshd process
tree are still found by :meth:`SshdCluster.descendants` and killed by ``kill_host``/``stop``.

Processes are only ever signalled by PID, and only if they belong to this cluster's
sshd trees (or carry its tag); a PID's start time is re-checked before each signal.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

SSHD_CANDIDATES: tuple[str, ...] = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
INSTALL_HINT = (
    "install openssh-server (Debian/Ubuntu: `apt-get install -y openssh-server`); "
    "sshd is looked up on PATH and at " + ", ".join(SSHD_CANDIDATES)
)
TAG_VAR = "SSHD_CLUSTER_TAG"
START_TIMEOUT = 10.0
TERM_GRACE = 2.0


class ClusterError(RuntimeError):
    """The cluster could not be set up or a host could not be (re)started."""


class SshdNotFound(ClusterError):
    """No sshd / ssh-keygen binary on this machine."""


@dataclass
class SshdHost:
    index: int
    name: str  # "h0", "h1", ...
    address: str  # 127.0.0.(10+index), or another free 127.0.0.x
    port: int  # free port found by binding port 0 on that address
    workdir: str  # <root>/hN/work (created, 0700)
    host_key_pub: str  # "ssh-ed25519 AAAA..."
    pid: int | None = None  # pid of `sshd -D -e -f <config>`, None when not running


# --------------------------------------------------------------------------- binaries


def find_sshd() -> str:
    """Absolute path of the sshd binary (PATH first, then the usual sbin dirs)."""
    candidates = [shutil.which("sshd"), *SSHD_CANDIDATES]
    for cand in candidates:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    raise SshdNotFound(f"sshd (OpenSSH server) not found: {INSTALL_HINT}")


def find_ssh_keygen(sshd: str | None = None) -> str:
    candidates = [shutil.which("ssh-keygen"), "/usr/bin/ssh-keygen", "/usr/local/bin/ssh-keygen"]
    if sshd:
        candidates.append(os.path.join(os.path.dirname(os.path.dirname(sshd)), "bin", "ssh-keygen"))
    for cand in candidates:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    raise SshdNotFound(f"ssh-keygen (OpenSSH) not found: {INSTALL_HINT}")


# --------------------------------------------------------------------------- /proc helpers


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    state: str
    start: int  # starttime in clock ticks since boot: guards against PID reuse

    @property
    def dead(self) -> bool:
        return self.state in ("Z", "X", "x")


def _read_proc(pid: int) -> _Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        rest = data[data.rindex(b")") + 2 :].split()
        return _Proc(pid, int(rest[1]), rest[0].decode(), int(rest[19]))
    except (ValueError, IndexError):
        return None


def _process_table() -> dict[int, _Proc]:
    table: dict[int, _Proc] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = _read_proc(int(entry))
            if proc is not None:
                table[proc.pid] = proc
    return table


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        raw = b""
    text = raw.replace(b"\0", b" ").strip().decode(errors="replace")
    if text:
        return text
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return "[" + f.read().strip().decode(errors="replace") + "]"
    except OSError:
        return "[?]"


def _environ(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:  # other users' processes, or gone
        return []


def _is_alive(proc: _Proc) -> bool:
    now = _read_proc(proc.pid)
    return now is not None and now.start == proc.start and not now.dead


def _signal(procs: Iterable[_Proc], sig: int) -> None:
    for proc in procs:
        if _is_alive(proc):  # same pid AND same start time: never hit a recycled pid
            try:
                os.kill(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _wait_gone(procs: Iterable[_Proc], timeout: float, keep: Iterable[int] = ()) -> list[_Proc]:
    """Wait until ``procs`` are dead; return those still alive after ``timeout`` s.

    Zombies among them that are children of this process are reaped here, except the pids
    in ``keep`` (owned by a ``subprocess.Popen``); zombies whose parent is one of ``procs``
    are waited for too (they are reparented to us when that parent dies, see
    ``_adopting_orphans``).
    """
    procs = list(procs)
    pids = {p.pid for p in procs}
    keep = set(keep)
    me = os.getpid()
    deadline = time.monotonic() + timeout
    while True:
        alive: list[_Proc] = []
        orphans_pending = False
        for proc in procs:
            now = _read_proc(proc.pid)
            if now is None or now.start != proc.start:
                continue
            if not now.dead:
                alive.append(proc)
            elif now.ppid == me and proc.pid not in keep:
                try:
                    os.waitpid(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                orphans_pending = True
            elif now.ppid in pids:
                orphans_pending = True
        if (not alive and not orphans_pending) or time.monotonic() >= deadline:
            return alive
        time.sleep(0.005)


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """Be the child subreaper while killing process trees.

    Processes killed together with their parent are then reparented to (and reaped by)
    this process at once, instead of lingering as zombies until init gets to them.
    """
    if _libc is None:
        yield
        return
    old = ctypes.c_int(0)
    _libc.prctl(37, ctypes.byref(old), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    _libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    try:
        yield
    finally:
        _libc.prctl(36, old.value, 0, 0, 0)


_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover
        _libc = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


# --------------------------------------------------------------------------- the cluster


class SshdCluster:
    """``n_hosts`` real sshd processes on loopback; see the module docstring."""

    def __init__(
        self,
        root: Path,
        n_hosts: int = 4,
        *,
        sshd_options: dict[str, str | None] | None = None,
        own_homes: bool = True,
    ) -> None:
        if n_hosts < 1:
            raise ValueError("n_hosts must be >= 1")
        self.root = Path(root).absolute()
        self.n_hosts = n_hosts
        self.sshd_options = dict(sshd_options or {})  # sshd keyword -> value (None: drop it)
        # own_homes (the default): each host's sessions get HOME=<host dir>/home (empty, no
        # shell rc files), like separate servers. With False, all hosts share this account's
        # home and whatever its rc files do: here root's ~/.bashrc runs `pyenv rehash`, whose
        # one lock file every shell of the account shares; a test that freezes or kills a
        # host mid-rehash then stalls every other login, and a killed holder leaves the lock
        # behind (60 s waits for every later shell and `pip install` on the machine).
        # Benchmarks that want this machine's real login cost pass False.
        self.own_homes = own_homes
        self.id = uuid.uuid4().hex[:12]
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.client_key = self.root / "client_key"
        self.authorized_keys = self.root / "authorized_keys"
        self.known_hosts = self.root / "known_hosts"
        self.ssh_config = self.root / "ssh_config"
        self.inventory = self.root / "inventory.yaml"
        self.hosts: list[SshdHost] = []
        self.sshd: str | None = None
        self.ssh_keygen: str | None = None
        self._popen: dict[int, subprocess.Popen] = {}
        self._sshd_real: str | None = None
        self.start_seconds: float | None = None

    # ----------------------------------------------------------------- paths
    def host_dir(self, i: int) -> Path:
        return self.root / f"h{i}"

    def host_key(self, i: int) -> Path:
        return self.host_dir(i) / "ssh_host_ed25519_key"

    def config_path(self, i: int) -> Path:
        return self.host_dir(i) / "sshd_config"

    def log_path(self, i: int) -> Path:
        return self.host_dir(i) / "sshd.log"

    def tag(self, i: int) -> str:
        """Value of ``$SSHD_CLUSTER_TAG`` in every session started through host ``i``."""
        return f"{self.id}-h{i}"

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> SshdCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Generate keys, write configs, start every sshd and wait for its SSH banner."""
        t0 = time.monotonic()
        self.sshd = find_sshd()
        self._sshd_real = os.path.realpath(self.sshd)
        self.ssh_keygen = find_ssh_keygen(self.sshd)
        self._check_account()
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privsep chroot
            os.chmod("/run/sshd", 0o755)
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(self.n_hosts):
            work = self.host_dir(i) / "work"
            work.mkdir(parents=True, exist_ok=True)
            os.chmod(work, 0o700)
        self._generate_keys()
        self.authorized_keys.write_text(_pub_line(self.client_key.with_suffix(".pub")) + "\n")
        self.ssh_config.write_text("")
        if not self.hosts:
            used: set[str] = set()
            for i in range(self.n_hosts):
                address, port = self._pick_address_port(i, used)
                used.add(address)
                self.hosts.append(
                    SshdHost(
                        index=i,
                        name=f"h{i}",
                        address=address,
                        port=port,
                        workdir=str(self.host_dir(i) / "work"),
                        host_key_pub=_pub_line(self.host_key(i).with_suffix(".pub")),
                    )
                )
        atexit.register(self.stop)
        try:
            self._start_hosts(range(self.n_hosts), may_move=True)
        except BaseException:
            self.stop()
            raise
        self._write_known_hosts()
        self.write_inventory()
        self.start_seconds = time.monotonic() - t0

    def stop(self) -> None:
        """TERM every sshd and all its descendants (by PID), KILL what is left after 2 s."""
        atexit.unregister(self.stop)
        if not self.hosts:
            return
        with _adopting_orphans():
            procs = self._collect(range(len(self.hosts)))
            _signal(procs.values(), signal.SIGTERM)
            left = _wait_gone(procs.values(), TERM_GRACE, keep=self._listeners())
            if left:
                self._freeze_and_kill(range(len(self.hosts)), extra=left)
            self._reap_all()

    def kill_host(self, i: int) -> None:
        """SIGKILL host ``i``'s sshd and every process started through it (a dead host)."""
        with _adopting_orphans():
            self._freeze_and_kill([i])
            self._reap(i)

    def start_host(self, i: int) -> None:
        """(Re)start host ``i``'s sshd on the same address, port and host key.

        Does nothing if it is running.
        """
        if self.alive(i):
            return
        self._reap(i)
        self._start_hosts([i], may_move=False)

    def alive(self, i: int) -> bool:
        host = self.hosts[i]
        popen = self._popen.get(i)
        return host.pid is not None and popen is not None and popen.poll() is None

    def ensure_running(self) -> list[int]:
        """Restart every host that is down; returns their indexes."""
        down = [h.index for h in self.hosts if not self.alive(h.index)]
        for i in down:
            self.start_host(i)
        return down

    # ----------------------------------------------------------------- inventory
    def write_inventory(self, path: Path | None = None, **defaults: object) -> Path:
        """Write the sshmr inventory (to ``self.inventory`` unless ``path``) and return it.

        ``defaults`` override the inventory's ``defaults`` (``slots=1``, ...); a value of
        None removes that key. Each call starts from the base defaults.
        """
        base: dict[str, object] = {
            "user": self.user,
            "slots": 4,
            "identity_file": str(self.client_key),
            "python": sys.executable,
        }
        for key, value in defaults.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        data = {
            "known_hosts": str(self.known_hosts),
            "ssh_config": str(self.ssh_config),
            "defaults": base,
            "hosts": [
                {"host": h.address, "port": h.port, "workdir": h.workdir} for h in self.hosts
            ],
        }
        target = Path(path) if path is not None else self.inventory
        _write_atomic(target, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
        return target

    # ----------------------------------------------------------------- processes
    def descendants(
        self, i: int | None = None, *, include_sshd: bool = False
    ) -> list[tuple[int, str]]:
        """(pid, cmdline) of live processes running "on" host ``i`` (default: any host).

        That is every process descended from the host's sshd, plus any process carrying
        the host's ``SSHD_CLUSTER_TAG`` (daemonized out of the tree), excluding the sshd
        processes themselves (listener and per-connection) unless ``include_sshd``.
        """
        idxs = range(len(self.hosts)) if i is None else [i]
        procs = self._collect(idxs)
        listeners = {self.hosts[j].pid for j in idxs}
        out = []
        for pid in sorted(procs):
            if pid in listeners or (not include_sshd and self._is_sshd(pid)):
                continue
            out.append((pid, _cmdline(pid)))
        return out

    def reap_leftovers(self, timeout: float = 3.0) -> list[tuple[str, int, str]]:
        """Wait up to ``timeout`` s for all processes on the hosts to end.

        Returns ``[(host name, pid, cmdline)]`` of those still running after that, which are
        then SIGKILLed (by PID). An empty list means the hosts are clean.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [
                (h.name, pid, cmd) for h in self.hosts for pid, cmd in self.descendants(h.index)
            ]
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if found:
            pids = {pid for _, pid, _ in found}
            table = _process_table()
            victims = [table[p] for p in pids if p in table]
            with _adopting_orphans():
                _signal(victims, signal.SIGSTOP)
                _signal(victims, signal.SIGKILL)
                _wait_gone(victims, TERM_GRACE, keep=self._listeners())
        return found

    # ----------------------------------------------------------------- internals
    def _check_account(self) -> None:
        """sshd with ``UsePAM no`` refuses accounts whose shadow password starts with '!'."""
        if os.geteuid() != 0 or str(self._option("UsePAM", "no")).lower() != "no":
            return
        try:
            lines = Path("/etc/shadow").read_text().splitlines()
        except OSError:
            return
        for line in lines:
            fields = line.split(":")
            if fields[0] == self.user and len(fields) > 1 and fields[1].startswith("!"):
                raise ClusterError(
                    f"account {self.user!r} is locked ('!' password in /etc/shadow): sshd "
                    f"(UsePAM no) refuses it even for key logins; unlock it without setting a "
                    f"password with `usermod -p '*' {self.user}`"
                )

    def _option(self, key: str, default: str) -> str:
        for k, v in self.sshd_options.items():
            if k.lower() == key.lower():
                return str(v)
        return default

    def _generate_keys(self) -> None:
        assert self.ssh_keygen is not None
        jobs = [(self.client_key, f"sshd-cluster-client@{self.id}")]
        jobs += [(self.host_key(i), f"h{i}@{self.id}") for i in range(self.n_hosts)]
        procs = []
        for path, comment in jobs:
            if path.exists() and path.with_suffix(".pub").exists():
                continue  # keep keys across stop()/start(): known_hosts stays valid
            for stale in (path, path.with_suffix(".pub")):
                stale.unlink(missing_ok=True)
            cmd = [self.ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
            procs.append(
                (
                    cmd,
                    subprocess.Popen(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                    ),
                )
            )
        for cmd, proc in procs:
            out, _ = proc.communicate(timeout=30)
            if proc.returncode != 0:
                raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}): {out.decode()}")

    def _pick_address_port(self, i: int, used: set[str]) -> tuple[str, int]:
        preferred = [f"127.0.0.{10 + i}"] if 10 + i <= 254 else []
        others = [f"127.0.0.{k}" for k in range(10, 255)]
        for address in [*preferred, *others, "127.0.0.1"]:
            if address in used and address != "127.0.0.1":
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((address, 0))
                    return address, s.getsockname()[1]
            except OSError:
                continue
        raise ClusterError("cannot bind any 127.0.0.x address (is the loopback interface up?)")

    def _config_text(self, i: int) -> str:
        host = self.hosts[i]
        hdir = self.host_dir(i)
        opts: dict[str, str] = {
            "ListenAddress": f"{host.address}:{host.port}",
            "HostKey": str(self.host_key(i)),
            "PidFile": str(hdir / "sshd.pid"),
            "AuthorizedKeysFile": str(self.authorized_keys),
            "PubkeyAuthentication": "yes",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "UsePAM": "no",
            "StrictModes": "no",
            "PermitRootLogin": "prohibit-password",
            "AllowAgentForwarding": "no",
            "X11Forwarding": "no",
            "PrintMotd": "no",
            "Subsystem": "sftp internal-sftp",
            "MaxStartups": "100:30:200",
            "MaxSessions": "100",
            "LogLevel": "VERBOSE",
            # A login shell's `pyenv rehash` waits 60 s on a lock left by a session killed
            # mid-rehash (kill_host): never wait on it in a test session.
            "SetEnv": f"{TAG_VAR}={self.tag(i)} PYENV_REHASH_TIMEOUT=0",
        }
        if self.own_homes:
            home = hdir / "home"
            home.mkdir(mode=0o700, exist_ok=True)
            opts["SetEnv"] += f" HOME={home}"
        canon = {k.lower(): k for k in opts}
        for key, value in self.sshd_options.items():
            name = canon.get(key.lower(), key)
            if value is None:
                opts.pop(name, None)
            elif name == "SetEnv":  # sshd only honours the first SetEnv line: keep our tag
                opts[name] = f"{opts[name]} {value}"
            else:
                opts[name] = str(value)
        return "".join(f"{k} {v}\n" for k, v in opts.items())

    def _sshd_argv(self, i: int, argv: list[str]) -> list[str]:
        """How host ``i``'s sshd is started (a subclass may wrap it, e.g. in a namespace)."""
        return argv

    def _spawn(self, i: int) -> None:
        assert self.sshd is not None
        cfg = self.config_path(i)
        cfg.write_text(self._config_text(i))
        log = self.log_path(i)
        cmd = self._sshd_argv(i, [self.sshd, "-D", "-e", "-f", str(cfg), "-E", str(log)])
        # Die with the test process if it is SIGKILLed (only safe when single-threaded).
        preexec = _die_with_parent if threading.active_count() == 1 and _libc else None
        with open(log, "ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
                preexec_fn=preexec,
            )
        self._popen[i] = popen
        self.hosts[i].pid = popen.pid

    def _start_hosts(self, idxs: Iterable[int], *, may_move: bool) -> None:
        pending = list(idxs)
        for attempt in range(3):
            for i in pending:
                self._spawn(i)
            failed = self._wait_ready(pending)
            if not failed:
                return
            retry = may_move and attempt < 2 and all(self._bind_failed(i) for i in failed)
            if not retry:
                raise ClusterError(
                    "sshd exited during startup:\n"
                    + "\n".join(self._describe_failure(i) for i in failed)
                )
            used = {h.address for h in self.hosts if h.index not in failed}
            for i in failed:  # lost a race for the port: pick a new one
                self._reap(i)
                self.hosts[i].address, self.hosts[i].port = self._pick_address_port(i, used)
                used.add(self.hosts[i].address)
            pending = failed

    def _wait_ready(self, idxs: list[int]) -> list[int]:
        """Wait until each sshd sends an SSH-2.0 banner; return those that exited instead."""
        deadline = time.monotonic() + START_TIMEOUT
        pending = set(idxs)
        failed: list[int] = []
        while pending:
            for i in sorted(pending):
                if self._popen[i].poll() is not None:
                    pending.discard(i)
                    failed.append(i)
                elif _has_banner(self.hosts[i].address, self.hosts[i].port):
                    pending.discard(i)
            if not pending:
                break
            if time.monotonic() >= deadline:
                details = "\n".join(self._describe_failure(i) for i in sorted(pending))
                with _adopting_orphans():
                    for i in pending:
                        self._freeze_and_kill([i])
                        self._reap(i)
                raise ClusterError(
                    f"sshd did not send an SSH-2.0 banner within {START_TIMEOUT:.0f} s:\n{details}"
                )
            time.sleep(0.005)
        return failed

    def _bind_failed(self, i: int) -> bool:
        text = _tail(self.log_path(i), 30)
        return "Bind to port" in text or "Cannot bind any address" in text

    def _describe_failure(self, i: int) -> str:
        h = self.hosts[i]
        rc = self._popen[i].poll() if i in self._popen else None
        status = "still running" if rc is None else f"exit status {rc}"
        return (
            f"{h.name} ({h.address}:{h.port}, {status}), last lines of {self.log_path(i)}:\n"
            + _tail(self.log_path(i), 20)
        )

    def _is_sshd(self, pid: int) -> bool:
        try:
            exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
            return os.path.realpath(exe) == self._sshd_real
        except OSError:  # not ours to inspect (privsep child as another user) or gone
            pass
        cmd = _cmdline(pid)
        return cmd.startswith("sshd:") or os.path.basename(cmd.split(" ", 1)[0]) == "sshd"

    def _collect(
        self, idxs: Iterable[int], table: dict[int, _Proc] | None = None
    ) -> dict[int, _Proc]:
        """Live processes of hosts ``idxs``: sshd trees plus tagged processes and their trees."""
        idxs = list(idxs)
        table = _process_table() if table is None else table
        children: dict[int, list[int]] = defaultdict(list)
        for proc in table.values():
            children[proc.ppid].append(proc.pid)
        roots = [self.hosts[i].pid for i in idxs if self.hosts[i].pid in table]
        tags = {f"{TAG_VAR}={self.tag(i)}".encode() for i in idxs}
        me = os.getpid()
        for proc in table.values():
            if proc.pid != me and not proc.dead and tags.intersection(_environ(proc.pid)):
                roots.append(proc.pid)
        found: dict[int, _Proc] = {}
        stack = list(roots)
        while stack:
            pid = stack.pop()
            if pid in found or pid not in table:
                continue
            if not table[pid].dead:
                found[pid] = table[pid]
            stack.extend(children.get(pid, ()))
        return found

    def _freeze_and_kill(self, idxs: Iterable[int], extra: Iterable[_Proc] = ()) -> None:
        """SIGSTOP the hosts' processes until no new ones appear, then SIGKILL them all."""
        idxs = list(idxs)
        victims: dict[int, _Proc] = {p.pid: p for p in extra}
        for _ in range(50):
            new = {pid: p for pid, p in self._collect(idxs).items() if pid not in victims}
            if not new:
                break
            victims.update(new)
            _signal(new.values(), signal.SIGSTOP)
        _signal(victims.values(), signal.SIGKILL)
        left = _wait_gone(victims.values(), TERM_GRACE, keep=self._listeners())
        if left:
            raise ClusterError(f"processes survived SIGKILL: {[p.pid for p in left]}")

    def _listeners(self) -> set[int]:
        return {p.pid for p in self._popen.values()}

    def _reap(self, i: int) -> None:
        popen = self._popen.pop(i, None)
        if popen is not None:
            if popen.poll() is None:
                popen.kill()
            popen.wait(timeout=TERM_GRACE + 1)
        if i < len(self.hosts):
            self.hosts[i].pid = None

    def _reap_all(self) -> None:
        for i in list(self._popen):
            self._reap(i)

    def _write_known_hosts(self) -> None:
        lines = [f"[{h.address}]:{h.port} {h.host_key_pub}\n" for h in self.hosts]
        _write_atomic(self.known_hosts, "".join(lines))


# --------------------------------------------------------------------------- small helpers


def _pub_line(path: Path) -> str:
    """ "ssh-ed25519 AAAA..." (key type and base64, no comment) from a .pub file."""
    return " ".join(path.read_text().split()[:2])


def _has_banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5) as s:
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"SSH-2.0")
    except OSError:
        return False


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"  (no log: {exc})"
    return "\n".join("  " + line for line in lines[-n:]) or "  (log is empty)"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
