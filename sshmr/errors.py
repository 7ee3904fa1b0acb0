"""The sshmr error tree: every error sshmr raises on purpose is an ``SshmrError``.

::

    SshmrError                      exit 1 unless a subclass says otherwise
    ├── ConfigError                 exit 2: bad usage or configuration
    │   ├── InventoryError          malformed inventory (file:line: field: problem), or a
    │   │                           --hosts pattern that selects nothing
    │   ├── TargetError             TARGET not importable / not a JobExecutor
    │   └── InputError              input file missing, bad --split, bad partitioner
    ├── HostError                   one host cannot be used (carries ``host``)
    │   ├── HostUnreachable         TCP connect / banner / keepalive failed
    │   ├── AuthenticationFailed    no key was accepted, key file missing or unreadable
    │   ├── HostKeyUnknown          host not in known_hosts (fix: --accept-new-hosts)
    │   ├── HostKeyChanged          known_hosts has a different key (always fatal)
    │   │   └── HostKeyRevoked      known_hosts marks the host's key @revoked
    │   ├── RemoteSetupFailed       python3 missing, workdir not writable, agent died
    │   └── HostDiskFull            no space left in the host's workdir (names the free space)
    ├── NoHostsAvailable            exit 3: every host is down or quarantined
    ├── ResultError                 a result that cannot be read or fails its checksum
    ├── JobFailed                   a job of a notebook call failed (``job``, ``item``,
    │                               ``host``, ``error``; the remote traceback is its cause)
    ├── RunError                    a run directory problem
    │   ├── RunNotFound             no such run in the runs dir
    │   ├── RunLocked               another master holds the run's lock
    │   ├── RunsDirFull             no space left in the runs dir: the run stopped, resumable
    │   └── JobNotFound             no such job in the run (``sshmr show``)
    └── Cancelled                   exit 130: the run was interrupted or cancelled

``SshmrWarning`` (a ``UserWarning``, not in the tree) flags what sshmr ignores, e.g. an
inventory variable it does not read.

Messages are one line that names the thing and the fix. The CLI prints
``sshmr: error: <message>`` and exits with ``exit_code``; no traceback.
"""

from __future__ import annotations


class SshmrError(Exception):
    """Base of every error sshmr raises on purpose."""

    exit_code = 1


class ConfigError(SshmrError):
    """Bad usage or configuration; nothing was started."""

    exit_code = 2


class InventoryError(ConfigError):
    """The inventory file is malformed; the message names file, line and field."""


class TargetError(ConfigError):
    """TARGET (file.py:Class or package.module:Class) cannot be loaded."""


class InputError(ConfigError):
    """An input file, split spec or partitioner is unusable."""


class HostError(SshmrError):
    """A single host cannot be used. ``host`` is the inventory name."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host


class HostUnreachable(HostError):
    """TCP connect, SSH banner or keepalive failed."""


class AuthenticationFailed(HostError):
    """No key was accepted, or a configured key file is missing or unreadable."""


class HostKeyUnknown(HostError):
    """The host is not in known_hosts; ``--accept-new-hosts`` records it."""


class HostKeyChanged(HostError):
    """known_hosts holds a different key for the host. Always fatal for that host."""


class HostKeyRevoked(HostKeyChanged):
    """known_hosts marks the key the host offers ``@revoked``. Always fatal for that host."""


class RemoteSetupFailed(HostError):
    """The host is reachable but cannot run workers (no python3, workdir, ...)."""


class HostDiskFull(HostError):
    """No space left on the device of the host's workdir: a host-caused failure."""


class NoHostsAvailable(SshmrError):
    """Every host is down or quarantined; the run stops and can be resumed."""

    exit_code = 3


class ResultError(SshmrError):
    """A result that cannot be read, decoded or verified."""


class JobFailed(SshmrError):
    """A job of a ``sshmr.notebook.Cluster`` call failed on every attempt.

    Like ``concurrent.futures``, the remote traceback is attached as ``__cause__`` (a
    :class:`RemoteTraceback`) and kept in ``remote_traceback``.
    """

    def __init__(self, job: int, item: object, host: object, error: str,
                 remote_traceback: str = "", attempts: int = 0) -> None:
        shown = repr(item)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        super().__init__(f"job {job} (item {shown}) failed on host {host}: {error}")
        self.job, self.item, self.host, self.error = job, item, host, error
        self.remote_traceback, self.attempts = remote_traceback, attempts

    def __reduce__(self):  # picklable despite the keyword-rich __init__
        return (type(self), (self.job, self.item, self.host, self.error,
                             self.remote_traceback, self.attempts))


class RemoteTraceback(Exception):
    """The traceback of a job that raised on a host, as text (the cause of JobFailed)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.tb.rstrip()}\n\"\"\""


class RunError(SshmrError):
    """A problem with a run directory."""

    exit_code = 2


class RunNotFound(RunError):
    """No such run in the runs directory."""


class RunLocked(RunError):
    """Another master (run or resume) holds the run's lock."""


class RunsDirFull(RunError):
    """The master's runs dir has no space left. The master stopped (its agents too) with the
    journal intact; ``sshmr resume RUN`` continues once there is space again."""


class JobNotFound(RunError):
    """The run has no job with that number."""


class Cancelled(SshmrError):
    """The run was interrupted (Ctrl-C, SIGTERM) or cancelled with ``sshmr cancel``."""

    exit_code = 130


class SshmrWarning(UserWarning):
    """Something sshmr ignores but a user may want to know about (an inventory variable it
    does not read). Not an error: the CLI prints ``sshmr: warning: <message>``."""
