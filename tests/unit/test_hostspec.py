"""``sshmr hosts add`` resolving what it is given (``engine/hostspec``), no SSH: a host of
the run's inventory, a glob over it, or an ad-hoc ``user@host:port`` that takes the
inventory's known_hosts and ssh_config, whatever format the inventory is in."""

from __future__ import annotations

from pathlib import Path

import pytest

from sshmr.engine.hostspec import resolve
from sshmr.errors import ConfigError


@pytest.fixture()
def ini(tmp_path: Path) -> Path:
    known = tmp_path / "known"
    known.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text("Host alias1\n  HostName 127.0.0.9\n")
    path = tmp_path / "hosts.ini"
    path.write_text("[web]\nweb[1:2] ansible_host=127.0.0.20\n\n[all:vars]\n"
                    f"sshmr_known_hosts={known}\nsshmr_ssh_config={config}\n")
    return path


def test_a_glob_picks_hosts_of_an_ansible_inventory(ini: Path) -> None:
    hosts, known = resolve("web*", str(ini))
    assert [h.name for h in hosts] == ["web1", "web2"]
    assert known == str(ini.parent / "known")


def test_an_adhoc_host_with_an_ansible_inventory_takes_its_known_hosts(ini: Path) -> None:
    hosts, known = resolve("alice@127.0.0.30:2222", str(ini))
    assert [(h.hostname, h.user, h.port) for h in hosts] == [("127.0.0.30", "alice", 2222)]
    assert known == str(ini.parent / "known")


def test_an_ssh_config_alias_of_an_ansible_inventory(ini: Path) -> None:
    hosts, _ = resolve("alias1", str(ini))
    assert [h.hostname for h in hosts] == ["127.0.0.9"]


def test_an_unknown_name_is_one_line(ini: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve("db1", str(ini))
    assert "unknown host 'db1'" in str(err.value) and "\n" not in str(err.value)
