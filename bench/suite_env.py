"""The benchmark suite's environment: the loopback cluster, the accounts, GNU parallel.

One :class:`SshdCluster` (the test fixture code) with as many hosts as the largest
workload needs; each workload uses the first N of them. Two accounts log in to it:

* ``root`` (or the current user when not root): its own shell start-up files (here root's
  ``~/.bashrc`` runs ``pyenv init``), python = the running interpreter;
* ``plain`` (only when run as root): the user ``sshmrbench``, created with ``useradd`` if
  missing, login shell ``/bin/bash`` with Debian's stock ``~/.bashrc``, its own
  ``~/.ssh/authorized_keys`` holding the cluster's client key, python ``/usr/bin/python3``,
  its own workdirs. This is the fair row for GNU parallel, whose every job starts a shell.

GNU parallel is capped: after ``cap`` seconds it gets SIGHUP (it starts no new job and
waits for the running ones), and its rate is the jobs it finished over the time it ran.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # tests/ is not a package

from helpers import write_inventory  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402

PLAIN_USER = "sshmrbench"
DRAIN_PATIENCE = 30.0  # after SIGHUP, how long parallel may take to finish running jobs


class BenchError(Exception):
    pass


@dataclass
class Account:
    """Who the remote side runs as, and with which interpreter and workdirs."""

    label: str  # "root" / "plain" (or the user name when not root)
    user: str
    python: str
    workroot: Path | None = None  # per-host workdirs under it; None: the cluster's own
    home: str = ""
    notes: list[str] = field(default_factory=list)

    def workdir(self, cluster: SshdCluster, i: int) -> str:
        if self.workroot is None:
            return cluster.hosts[i].workdir
        path = self.workroot / f"h{i}"
        if not path.exists():
            path.mkdir(parents=True, mode=0o700)
            uid = pwd.getpwnam(self.user)
            os.chown(path, uid.pw_uid, uid.pw_gid)
        return str(path)

    def inventory(self, cluster: SshdCluster, path: Path, hosts: int, slots: int) -> Path:
        return write_inventory(cluster, path, hosts=list(range(hosts)), user=self.user,
                               python=self.python, slots=slots,
                               host_overrides={i: {"workdir": self.workdir(cluster, i)}
                                               for i in range(hosts)})


def start_cluster(root: Path, n_hosts: int, plain: bool) -> SshdCluster:
    """The cluster; with ``plain``, sshd also reads each user's ``~/.ssh/authorized_keys``."""
    options = {}
    if plain:
        options["AuthorizedKeysFile"] = f"{root / 'cluster' / 'authorized_keys'} " \
                                        f".ssh/authorized_keys"
    cluster = SshdCluster(root / "cluster", n_hosts, sshd_options=options, own_homes=False)
    cluster.start()
    return cluster


def accounts(root: Path, cluster: SshdCluster, want_plain: bool) -> list[Account]:
    me = pwd.getpwuid(os.geteuid())
    first = Account("root" if me.pw_uid == 0 else me.pw_name, me.pw_name, sys.executable,
                    home=me.pw_dir)
    if me.pw_uid != 0 or not want_plain:
        return [first]
    return [first, plain_account(root, cluster)]


def plain_account(root: Path, cluster: SshdCluster) -> Account:
    """The ``sshmrbench`` user: created if missing, key installed, workdirs made."""
    try:
        entry = pwd.getpwnam(PLAIN_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", PLAIN_USER], check=True)
        entry = pwd.getpwnam(PLAIN_USER)
    # sshd (UsePAM no) refuses a locked account ('!' password) even for key logins
    subprocess.run(["usermod", "-p", "*", PLAIN_USER], check=True)
    ssh_dir = Path(entry.pw_dir, ".ssh")
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    line = cluster.client_key.with_suffix(".pub").read_text().strip()
    old = keys.read_text().splitlines() if keys.exists() else []
    keys.write_text("\n".join([k for k in old if k.strip()] + [line]) + "\n")
    for path in (ssh_dir, keys):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    keys.chmod(0o600)
    os.chmod(root, 0o711)  # the plain user's workdirs live under our temp dir
    workroot = root / "plain"
    workroot.mkdir(mode=0o711)
    python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    return Account("plain", PLAIN_USER, python, workroot=workroot, home=entry.pw_dir,
                   notes=[f"user {PLAIN_USER}, shell /bin/bash, stock ~/.bashrc, {python}"])


def remove_key(account: Account, cluster: SshdCluster) -> None:
    """Take the cluster's key out of the plain user's authorized_keys again."""
    if account.workroot is None:
        return
    keys = Path(account.home, ".ssh", "authorized_keys")
    line = cluster.client_key.with_suffix(".pub").read_text().strip()
    with contextlib.suppress(OSError):
        keys.write_text("".join(k + "\n" for k in keys.read_text().splitlines()
                                if k.strip() and k.strip() != line))


# --------------------------------------------------------------------------- GNU parallel


def sshlogins(cluster: SshdCluster, account: Account, hosts: int, slots: int) -> list[str]:
    lines = []
    for h in cluster.hosts[:hosts]:
        ssh = ["ssh", "-F", str(cluster.ssh_config), "-i", str(cluster.client_key),
               "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={cluster.known_hosts}",
               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(h.port)]
        lines.append(f"{slots}/{shlex.join(ssh)} {account.user}@{h.address}")
    return lines


def run_parallel(root: Path, name: str, logins: list[str], args: list[str], inputs: list[str],
                 cap: float, cwd: Path | None = None) -> dict:
    """``parallel -M --sshloginfile`` over ``inputs``; SIGHUP after ``cap`` s.

    Returns jobs finished (exit 0), the wall time, the rate, and whether it was capped.
    """
    work = root / f"parallel-{name}"
    work.mkdir(parents=True, exist_ok=True)
    loginfile = work / "sshloginfile"
    loginfile.write_text("\n".join(logins) + "\n")
    joblog = work / "joblog"
    joblog.unlink(missing_ok=True)
    tmp = work / "tmp"  # -M control sockets
    tmp.mkdir(exist_ok=True)
    cmd = ["parallel", "--will-cite", "-M", "--sshloginfile", str(loginfile),
           "--joblog", str(joblog), *args]
    env = dict(os.environ, TMPDIR=str(tmp))
    feed = work / "inputs"
    feed.write_text("".join(f"{x}\n" for x in inputs))
    t0 = time.perf_counter()
    with open(feed, "rb") as stdin, open(work / "stdout", "wb") as out, \
            open(work / "stderr", "wb") as err:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, env=env,
                                cwd=cwd, start_new_session=True)
    capped = False
    try:
        try:
            proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            capped = True
            proc.send_signal(signal.SIGHUP)  # drain: no new jobs, running ones finish
            proc.wait(timeout=DRAIN_PATIENCE)
    finally:
        end_session(proc)
    wall = time.perf_counter() - t0
    done = failed = 0
    if joblog.exists():
        for row in joblog.read_text().splitlines()[1:]:
            f = row.split("\t")
            if len(f) > 6 and f[6] == "0" and f[7] == "0":
                done += 1
            else:
                failed += 1
    if not capped and (proc.returncode != 0 or done != len(inputs)):
        tail = (work / "stderr").read_text(errors="replace")[-1500:]
        raise BenchError(f"GNU parallel ({name}) failed: exit {proc.returncode}, {done} of "
                         f"{len(inputs)} jobs done: {tail}")
    return {"jobs": len(inputs), "done": done, "failed": failed, "capped": capped,
            "wall_s": round(wall, 3), "jobs_per_s": round(done / wall, 2) if wall else 0.0,
            "command": shlex.join(cmd)}


def end_session(proc: subprocess.Popen) -> None:
    """Kill (by PID) whatever is left of the session ``proc`` leads (ControlMasters...)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pid in session_members(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def session_members(sid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_bytes()
            fields = data[data.rindex(b")") + 2:].split()
        except (OSError, ValueError):
            continue
        if int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line contains ``text`` (our unique temp dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if text in cmd and state not in (b"Z", b"X"):
            found.append(f"{entry} {cmd.strip()}")
    return found
