"""Shared fixtures: real OpenSSH sshd clusters on loopback (see ``tests/sshd_cluster.py``).

* ``sshd_cluster`` (session): 4 hosts, started once (well under a second).
* ``cluster`` (function): the same session cluster, under a shorter name.
* ``fresh_cluster`` (function): factory ``make_cluster(n=2, **sshd_options)`` for tests that
  kill hosts or need special sshd settings, e.g. ``fresh_cluster(2, MaxSessions=2)``.
* ``netns_cluster`` (function): factory ``make_cluster(n=2)``, each host behind a veth link
  that tests cut and impair (root only, see ``tests/netns_cluster.py``).

After every test that used a cluster, nothing may be left running on any of its hosts
("no orphan process on any host"): leftovers fail the test with their (pid, cmdline) and
are then killed by PID. A session-cluster host that the test killed is restarted and the
session inventory is rewritten with its defaults.

A missing sshd is a failure with an install hint, never a skip.

Tests marked ``root`` (network namespaces, tmpfs mounts) need root; run as another user
they are deselected, and the summary says how many and why (never a silent skip).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:  # tests/ is not a package
    sys.path.insert(0, str(Path(__file__).parent))

from sshd_cluster import ClusterError, SshdCluster  # noqa: E402

LEFTOVER_TIMEOUT = 3.0  # an ssh session that is closing takes a moment to exit
_ROOT_ONLY: list[str] = []  # node ids deselected because they need root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``root`` tests when not root; reported in the summary, not skipped."""
    if os.geteuid() == 0:
        return
    root_only = [item for item in items if item.get_closest_marker("root")]
    if root_only:
        _ROOT_ONLY.extend(item.nodeid for item in root_only)
        config.hook.pytest_deselected(items=root_only)
        items[:] = [item for item in items if not item.get_closest_marker("root")]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _ROOT_ONLY:
        terminalreporter.write_sep(
            "=", f"{len(_ROOT_ONLY)} root-only tests deselected (network namespaces, tmpfs "
            "mounts): run the suite as root to include them", yellow=True)
        for nodeid in _ROOT_ONLY:
            terminalreporter.write_line(f"  deselected (needs root): {nodeid}")


@pytest.fixture(autouse=True)
def _no_ssh_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's ssh-agent out of tests (their ~/.ssh is kept out by every
    inventory pointing ``ssh_config``/``known_hosts`` at the cluster's own files)."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("SSH_AGENT_PID", raising=False)


def _start(cluster: SshdCluster) -> SshdCluster:
    try:
        cluster.start()
        return cluster
    except ClusterError as exc:  # includes SshdNotFound: fail, never skip
        cluster.stop()
        problem = str(exc)
    pytest.fail(f"cannot start the test sshd cluster: {problem}", pytrace=False)


def _leftover_report(leftovers: list[tuple[str, int, str]], where: str) -> str:
    lines = [f"  {host} pid {pid}: {cmd}" for host, pid, cmd in leftovers]
    return (
        f"processes were left running on {where} after the test (no orphan process may "
        f"outlive a test on any host); they have now been killed:\n" + "\n".join(lines)
    )


@pytest.fixture(scope="session")
def sshd_cluster(tmp_path_factory: pytest.TempPathFactory):
    """4-host cluster shared by the whole session; see the module docstring."""
    cluster = _start(SshdCluster(tmp_path_factory.mktemp("sshd"), 4))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(sshd_cluster: SshdCluster) -> SshdCluster:
    return sshd_cluster


@pytest.fixture(autouse=True)
def _session_cluster_hygiene(request: pytest.FixtureRequest):
    """After each test that used ``sshd_cluster``: no leftovers, all hosts up again."""
    if "sshd_cluster" not in request.fixturenames:
        yield
        return
    sshd = request.getfixturevalue("sshd_cluster")
    yield
    leftovers = sshd.reap_leftovers(timeout=LEFTOVER_TIMEOUT)
    sshd.ensure_running()
    sshd.write_inventory()
    if leftovers:
        pytest.fail(_leftover_report(leftovers, "the session sshd cluster"), pytrace=False)


@pytest.fixture
def fresh_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Factory ``make_cluster(n=2, *, own_homes=True, **sshd_options) -> SshdCluster``
    (see ``SshdCluster``), torn down after the test."""
    clusters: list[SshdCluster] = []

    def make_cluster(n: int = 2, *, own_homes: bool = True,
                     **sshd_options: object) -> SshdCluster:
        options = {k: (None if v is None else str(v)) for k, v in sshd_options.items()}
        new = SshdCluster(tmp_path_factory.mktemp("cluster"), n, sshd_options=options or None,
                          own_homes=own_homes)
        clusters.append(new)
        return _start(new)

    yield make_cluster
    _tear_down(clusters, "a fresh_cluster")


def _tear_down(clusters: list[SshdCluster], what: str) -> None:
    leftovers: list[tuple[str, int, str]] = []
    for made in clusters:
        try:
            found = made.reap_leftovers(timeout=LEFTOVER_TIMEOUT)
            leftovers += [(f"{made.root.name}/{h}", pid, cmd) for h, pid, cmd in found]
        finally:
            made.stop()
    if leftovers:
        pytest.fail(_leftover_report(leftovers, what), pytrace=False)


@pytest.fixture
def netns_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Factory ``make_cluster(n=2) -> NetnsCluster`` (each host's sshd in a network
    namespace of its own, see ``tests/netns_cluster.py``); for ``@pytest.mark.root`` tests."""
    from netns_cluster import NetnsCluster

    clusters: list[SshdCluster] = []

    def make_cluster(n: int = 2) -> NetnsCluster:
        new = NetnsCluster(tmp_path_factory.mktemp("netns"), n)
        clusters.append(new)
        return _start(new)

    yield make_cluster
    _tear_down(clusters, "a netns_cluster")
