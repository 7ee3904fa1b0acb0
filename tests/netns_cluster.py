"""An sshd cluster whose hosts sit behind real network links that tests can cut and impair.

Every host's sshd runs in a network namespace of its own (``ip netns exec NS sshd ...``),
linked to the root namespace by a veth pair on a private /30: the root side is
``10.213.K.4i+1``, the namespace side ``10.213.K.4i+2``, where the master connects (port
2222). ``K`` is a /24 no other live cluster uses (chosen under a file lock, from the
addresses present in the root namespace), so two clusters at once never collide. Both sides
carry permanent neighbour (ARP) entries, so a cut link is a black hole: nothing is answered,
no error comes back.

    with NetnsCluster(tmp_path, n_hosts=2) as c:
        c.partition(0)            # h0's link down both ways, silently (no RST, no FIN)
        c.partitioned(0)          # True (read from the kernel's link state)
        c.heal(0)
        c.impair(1, loss_pct=10, delay_ms=50)
        c.unimpair(1)

``impair``: the kernel has no ``netem``; inside the host's namespace, iptables rules drop
each packet crossing its link with probability ``loss_pct`` % (``-m statistic --mode
random``), in both directions, and send the rest through an NFQUEUE delay line
(``tests/netdelay.py``) that holds each for ``delay_ms`` before the kernel lets it go on
(so a round trip is ``2 * delay_ms`` longer). ``stop`` removes exactly the namespaces and
veth pairs this cluster created (also at exit, and after a failed start). Needs root.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from sshd_cluster import ClusterError, SshdCluster

PORT = 2222
NET = "10.213"
LOCK = os.path.join(tempfile.gettempdir(), "sshmr-netns.lock")
DELAY_LINE = Path(__file__).resolve().parent / "netdelay.py"
QUEUE = 0


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=30)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} failed ({proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}")
    return proc


class NetnsCluster(SshdCluster):
    """See the module docstring."""

    def __init__(self, root: Path, n_hosts: int = 2, **kwargs: object) -> None:
        if n_hosts > 64:
            raise ValueError("a NetnsCluster has at most 64 hosts (one /24)")
        super().__init__(root, n_hosts, **kwargs)  # type: ignore[arg-type]
        self.block: int | None = None  # K of 10.213.K.0/24
        self._made_ns: list[str] = []
        self._made_veth: list[str] = []
        self._delay_lines: dict[int, subprocess.Popen] = {}

    # ----------------------------------------------------------------- names
    def netns(self, i: int) -> str:
        return f"sshmr-{self.id[:8]}-h{i}"

    def veth(self, i: int) -> str:
        return f"smr{self.id[:8]}{i}"  # the root side; <= 15 characters

    def _addr(self, i: int, side: int) -> str:
        assert self.block is not None
        return f"{NET}.{self.block}.{4 * i + side}"

    def _mac(self, i: int, side: int) -> str:
        assert self.block is not None
        return f"02:d5:{self.block:02x}:{i:02x}:00:{side:02x}"

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if os.geteuid() != 0:
            raise ClusterError("a NetnsCluster needs root (ip netns, veth pairs)")
        if not shutil.which("ip"):
            raise ClusterError("`ip` not found: apt-get install -y iproute2")
        atexit.register(self._teardown)
        try:
            with open(LOCK, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self.block = self._free_block()
                for i in range(self.n_hosts):
                    self._make_link(i)
        except BaseException:
            self._teardown()
            raise
        super().start()  # stops (and so tears down) on failure

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self._teardown()

    def _teardown(self) -> None:
        atexit.unregister(self._teardown)
        for i in list(self._delay_lines):
            self._stop_delay_line(i)
        for veth in self._made_veth:  # deleting one side deletes the pair, at once
            _run("ip", "link", "del", veth, check=False)
        for ns in self._made_ns:
            _run("ip", "netns", "del", ns, check=False)
        self._made_veth.clear()
        self._made_ns.clear()

    def _free_block(self) -> int:
        used = set(re.findall(rf"inet {re.escape(NET)}\.(\d+)\.",
                              _run("ip", "-4", "-o", "addr", "show").stdout))
        for k in range(256):
            if str(k) not in used:
                return k
        raise ClusterError(f"every {NET}.K.0/24 is in use by other clusters")

    def _make_link(self, i: int) -> None:
        ns, veth = self.netns(i), self.veth(i)
        _run("ip", "netns", "add", ns)
        self._made_ns.append(ns)
        _run("ip", "link", "add", veth, "address", self._mac(i, 1), "type", "veth",
             "peer", "name", "eth0", "address", self._mac(i, 2), "netns", ns)
        self._made_veth.append(veth)
        _run("ip", "addr", "add", f"{self._addr(i, 1)}/30", "dev", veth)
        _run("ip", "link", "set", veth, "up")
        _run("ip", "-n", ns, "addr", "add", f"{self._addr(i, 2)}/30", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "neigh", "replace", self._addr(i, 2), "lladdr", self._mac(i, 2), "dev", veth,
             "nud", "permanent")
        self._ns_neighbour(i)

    def _ns_neighbour(self, i: int) -> None:
        _run("ip", "-n", self.netns(i), "neigh", "replace", self._addr(i, 1), "lladdr",
             self._mac(i, 1), "dev", "eth0", "nud", "permanent")

    # ----------------------------------------------------------------- hooks
    def _pick_address_port(self, i: int, used: set[str]) -> tuple[str, int]:
        return self._addr(i, 2), PORT

    def _sshd_argv(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns(i), *argv]

    # ----------------------------------------------------------------- faults
    def partition(self, i: int) -> None:
        """Cut host ``i``'s link both ways, silently: its end of the veth goes down."""
        _run("ip", "-n", self.netns(i), "link", "set", "eth0", "down")

    def heal(self, i: int) -> None:
        _run("ip", "-n", self.netns(i), "link", "set", "eth0", "up")
        self._ns_neighbour(i)  # a link going down flushes even permanent entries

    def partitioned(self, i: int) -> bool:
        out = _run("ip", "-n", self.netns(i), "-o", "link", "show", "eth0").stdout
        flags = out.split("<", 1)[1].split(">", 1)[0].split(",")
        return "UP" not in flags

    def impair(self, i: int, loss_pct: float = 0.0, delay_ms: float = 0.0) -> None:
        """Drop ``loss_pct`` % of the packets on host ``i``'s link, each direction, and
        delay the rest ``delay_ms`` each way (see the module docstring)."""
        self.unimpair(i)
        ns = self.netns(i)
        rules: list[list[str]] = []
        if loss_pct > 0:
            p = f"{loss_pct / 100:.4f}"
            rules += [["INPUT", "-i", "eth0", "-m", "statistic", "--mode", "random",
                       "--probability", p, "-j", "DROP"],
                      ["OUTPUT", "-o", "eth0", "-m", "statistic", "--mode", "random",
                       "--probability", p, "-j", "DROP"]]
        if delay_ms > 0:
            self._start_delay_line(i, delay_ms)
            queue = ["-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"]
            rules += [["INPUT", "-i", "eth0", *queue], ["OUTPUT", "-o", "eth0", *queue]]
        for rule in rules:
            _run("ip", "netns", "exec", ns, "iptables", "-w", "-A", *rule)

    def unimpair(self, i: int) -> None:
        ns = self.netns(i)
        for chain in ("INPUT", "OUTPUT"):
            _run("ip", "netns", "exec", ns, "iptables", "-w", "-F", chain)
        self._stop_delay_line(i)

    def impairment_counters(self, i: int) -> dict[str, int]:
        """Packets the kernel dropped on host ``i``'s link (``dropped``) and passed through
        its delay line (``delayed``) since ``impair``: proof the impairment bit."""
        counts = {"dropped": 0, "delayed": 0}
        for chain in ("INPUT", "OUTPUT"):
            out = _run("ip", "netns", "exec", self.netns(i), "iptables", "-w", "-L", chain,
                       "-v", "-x", "-n").stdout
            for line in out.splitlines()[2:]:
                fields = line.split()
                if len(fields) > 2 and fields[2] in ("DROP", "NFQUEUE"):
                    counts["dropped" if fields[2] == "DROP" else "delayed"] += int(fields[0])
        return counts

    def _start_delay_line(self, i: int, delay_ms: float) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns(i), sys.executable, str(DELAY_LINE), str(QUEUE),
             str(delay_ms)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self._delay_lines[i] = proc
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            self._stop_delay_line(i)
            raise ClusterError(f"the delay line of h{i} did not start: {line.strip()} "
                               f"{proc.stderr.read() if proc.stderr else ''}")

    def _stop_delay_line(self, i: int) -> None:
        proc = self._delay_lines.pop(i, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # it accepts what it holds, then exits
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
