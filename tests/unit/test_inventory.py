"""Unit tests for sshmr.inventory: parsing, ssh_config resolution, precedence and errors."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from sshmr.errors import ConfigError, InventoryError
from sshmr.inventory import Host, Inventory, load_inventory, parse_inventory

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never look at the developer's own ~/.ssh; fix the local user name."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr("sshmr.inventory.parse.getpass.getuser", lambda: "localme")
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Inventory:
    return load_inventory(write(tmp_path / name, text))


def error(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Load ``text`` as ./inventory.yaml (relative, as a user would type it); return the error."""
    write(tmp_path / "inventory.yaml", text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError) as info:
        load_inventory("inventory.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def by_name(inv: Inventory) -> dict[str, Host]:
    return {h.name: h for h in inv.hosts}


# -- happy paths --------------------------------------------------------------------------------


def test_minimal_list_uses_builtin_defaults(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path / "inventory.yaml", "hosts: [web1, 10.0.0.5]\n")
    inv = load_inventory(path)
    assert inv.path == str(path)
    assert inv.known_hosts == str(home / ".ssh" / "known_hosts")
    assert inv.ssh_config is None  # default ~/.ssh/config absent: fine
    assert [h.name for h in inv.hosts] == ["web1", "10.0.0.5"]
    assert inv.hosts[0] == Host(
        name="web1",
        hostname="web1",
        port=22,
        user="localme",
        identity_files=(),
        slots=None,
        python="python3",
        workdir="~/.sshmr",
        proxy_jump=None,
        connect_timeout=10.0,
    )


def test_hosts_and_inventory_are_frozen(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts: [a]\n")
    with pytest.raises(AttributeError):
        inv.hosts[0].port = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        inv.path = "x"  # type: ignore[misc]


def test_defaults_apply_and_per_host_values_win(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        defaults: {user: deploy, slots: 4, python: python3.11, workdir: /srv/w,
                   port: 2200, connect_timeout: 2.5, identity_file: ~/.ssh/d}
        hosts:
          - a
          - {host: b, user: bob, slots: 8, python: py, workdir: ~/w, port: 22,
             connect_timeout: 7, identity_file: [~/k1, ~/k2]}
        """,
    )
    a, b = inv.hosts
    home = os.environ["HOME"]
    assert (a.user, a.slots, a.python, a.workdir, a.port) == (
        "deploy",
        4,
        "python3.11",
        "/srv/w",
        2200,
    )
    assert a.connect_timeout == 2.5
    assert a.identity_files == (f"{home}/.ssh/d",)
    assert (b.user, b.slots, b.python, b.workdir, b.port) == ("bob", 8, "py", "~/w", 22)
    assert b.connect_timeout == 7.0 and isinstance(b.connect_timeout, float)
    assert b.identity_files == (f"{home}/k1", f"{home}/k2")


SSH_CONFIG = """
Host web1
    HostName 10.1.1.1
    Port 2200
    User alice
    IdentityFile ~/.ssh/web1_key
    IdentityFile /keys/second
    ProxyJump jump@bastion:2222
    ConnectTimeout 5

Host direct
    ProxyJump none

Host *
    User fallback
"""


def test_ssh_config_alias_resolves_hostname_port_user_keys(tmp_path: Path, home: Path) -> None:
    write(tmp_path / "ssh_config", SSH_CONFIG)
    inv = load(tmp_path, "ssh_config: ssh_config\nhosts: [web1, direct]\n")
    assert inv.ssh_config == str(tmp_path / "ssh_config")
    web1, direct = inv.hosts
    assert web1 == Host(
        name="web1",
        hostname="10.1.1.1",
        port=2200,
        user="alice",
        identity_files=(str(home / ".ssh" / "web1_key"), "/keys/second"),
        slots=None,
        python="python3",
        workdir="~/.sshmr",
        proxy_jump="jump@bastion:2222",
        connect_timeout=5.0,
    )
    assert (direct.hostname, direct.user, direct.proxy_jump) == ("direct", "fallback", None)


def test_per_host_and_defaults_override_ssh_config(tmp_path: Path) -> None:
    write(tmp_path / "ssh_config", SSH_CONFIG)
    inv = load(
        tmp_path,
        """
        ssh_config: ssh_config
        defaults: {user: deploy}
        hosts:
          - {host: web1, port: 22, identity_file: mykey, connect_timeout: 1}
          - {host: direct, user: carol}
        """,
    )
    web1, direct = inv.hosts
    assert web1.hostname == "10.1.1.1"  # HostName only comes from ssh_config
    assert web1.port == 22
    assert web1.user == "deploy"  # defaults beat ssh_config User
    assert web1.identity_files == (str(tmp_path / "mykey"),)  # replaces, not merges
    assert web1.connect_timeout == 1.0
    assert web1.proxy_jump == "jump@bastion:2222"
    assert direct.user == "carol"


def test_default_ssh_config_in_home_is_used(tmp_path: Path, home: Path) -> None:
    write(home / ".ssh" / "config", SSH_CONFIG)
    inv = load(tmp_path, "hosts: [web1]\n")
    assert inv.ssh_config == str(home / ".ssh" / "config")
    assert inv.hosts[0].hostname == "10.1.1.1"


def test_default_ssh_config_named_explicitly_may_be_absent(tmp_path: Path) -> None:
    inv = load(tmp_path, "ssh_config: ~/.ssh/config\nhosts: [web1]\n")
    assert inv.ssh_config is None


def test_ssh_config_null_ignores_the_default_file(tmp_path: Path, home: Path) -> None:
    write(home / ".ssh" / "config", SSH_CONFIG)
    inv = load(tmp_path, "ssh_config: null\nhosts: [web1]\n")
    assert inv.ssh_config is None
    assert inv.hosts[0].hostname == "web1"


def test_relative_paths_resolve_against_inventory_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    write(conf / "cfg", "Host a\n  HostName 10.9.9.9\n")
    write(
        conf / "inv.yaml",
        """
        known_hosts: kh/known_hosts
        ssh_config: cfg
        defaults: {identity_file: keys/id_default}
        hosts:
          - a
          - {host: b, identity_file: [../keys/b, ./k]}
        """,
    )
    monkeypatch.chdir(tmp_path / "..")  # the CWD must not matter
    inv = load_inventory(Path(tmp_path.name) / "conf" / "inv.yaml")
    assert inv.path == str(conf / "inv.yaml")
    assert inv.known_hosts == str(conf / "kh" / "known_hosts")
    assert inv.ssh_config == str(conf / "cfg")
    a, b = inv.hosts
    assert a.hostname == "10.9.9.9"
    assert a.identity_files == (str(conf / "keys" / "id_default"),)
    assert b.identity_files == (str(tmp_path / "keys" / "b"), str(conf / "k"))


def test_slots_auto_overrides_defaults(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        defaults: {slots: 4}
        hosts: [a, {host: b, slots: auto}, {host: c, slots: 1}]
        """,
    )
    assert [h.slots for h in inv.hosts] == [4, None, 1]
    inv = load(tmp_path, "defaults: {slots: auto}\nhosts: [a, {host: b, slots: 2}]\n")
    assert [h.slots for h in inv.hosts] == [None, 2]


def test_bare_strings_and_mappings_mix(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        hosts:
          - web1
          - host: web2
            port: 2222
          - "10.0.0.7"
        """,
    )
    assert [(h.name, h.port) for h in inv.hosts] == [("web1", 22), ("web2", 2222), ("10.0.0.7", 22)]


def test_same_host_on_other_port_is_named_host_colon_port(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        hosts:
          - web1
          - {host: web1, port: 2222}
          - {host: "::1", port: 2201}
          - {host: "::1", port: 2202}
          - {host: solo, port: 2222}
        """,
    )
    names = [h.name for h in inv.hosts]
    assert names == ["web1", "web1:2222", "[::1]:2201", "[::1]:2202", "solo"]
    assert by_name(inv)["web1:2222"].hostname == "web1"


def test_yaml_merge_keys_are_allowed(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        hosts:
          - &base {host: a, port: 2200, slots: 3}
          - {<<: *base, host: b}
        """,
    )
    assert [(h.name, h.port, h.slots) for h in inv.hosts] == [("a", 2200, 3), ("b", 2200, 3)]


def test_parse_inventory_from_text() -> None:
    inv = parse_inventory("hosts: [a]\n")
    assert inv.path == "<inventory>"
    assert inv.hosts[0].name == "a"


def test_example_inventory_loads(tmp_path: Path) -> None:
    inv = load_inventory(REPO_ROOT / "inventory.example.yaml")
    assert inv.ssh_config is None  # HOME is tmp_path/home: no ~/.ssh/config
    assert len(inv.hosts) >= 2
    assert any(h.slots is None for h in inv.hosts)  # documents `slots: auto`
    assert all(h.name for h in inv.hosts)


def test_example_documents_every_key() -> None:
    text = (REPO_ROOT / "inventory.example.yaml").read_text()
    keys = (
        "defaults known_hosts ssh_config hosts host port user identity_file slots python"
        " workdir connect_timeout auto --accept-new-hosts forwarding"
    )
    for key in keys.split():
        assert key in text, key


# -- errors -------------------------------------------------------------------------------------


def test_inventory_error_is_a_config_error() -> None:
    assert issubclass(InventoryError, ConfigError)


def test_missing_inventory_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError) as info:
        load_inventory("inventory.yaml")
    assert (
        str(info.value) == "inventory.yaml: cannot read file: [Errno 2] No such file or directory"
    )


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        # YAML syntax: the line comes from the YAML mark
        ("hosts:\n  - a\n  - [b\n", 4, "invalid YAML"),
        ("hosts:\n  - a\n  - b: c: d\n  - e\n", 3, "invalid YAML: mapping values are not allowed"),
        ("hosts:\n  - a\n\t- b\n", 3, "invalid YAML"),
        ("hosts: [a]\nhosts: [b]\n", 2, "duplicate key 'hosts'"),
        ("", 1, "expected a mapping with a 'hosts' list, got an empty file"),
        ("- a\n- b\n", 1, "expected a mapping with a 'hosts' list, got a list"),
        # top level
        ("hosts: [a]\nhost: [b]\n", 2, "unknown top-level key 'host' (did you mean 'hosts'?)"),
        ("hosts: [a]\nzzz: 1\n", 2, "unknown top-level key 'zzz' (valid keys: "),
        ("defaults: {}\n", 1, "hosts: expected a non-empty list of hosts, got nothing"),
        ("hosts: []\n", 1, "hosts: expected a non-empty list of hosts, got an empty list"),
        ("hosts:\n", 1, "hosts: expected a non-empty list of hosts, got nothing"),
        ("hosts: web1\n", 1, "hosts: expected a non-empty list of hosts, got 'web1'"),
        ("known_hosts: 3\nhosts: [a]\n", 1, "known_hosts: expected a file path, got 3"),
        # defaults
        ("defaults: [a]\nhosts: [a]\n", 1, "defaults: expected a mapping"),
        (
            "defaults:\n  slot: 2\nhosts: [a]\n",
            2,
            "defaults: unknown key 'slot' (did you mean 'slots'?)",
        ),
        ("defaults:\n  host: x\nhosts: [a]\n", 2, "defaults: unknown key 'host'"),
        (
            "defaults:\n  port: x\nhosts: [a]\n",
            2,
            "defaults.port: expected an integer 1-65535, got 'x'",
        ),
        # host entries
        (
            "hosts:\n  - a\n  - host: b\n    slot: 3\n",
            4,
            "hosts[1]: unknown key 'slot' (did you mean 'slots'?)",
        ),
        ("hosts:\n  - a\n  - {port: 22}\n", 3, "hosts[1]: missing required key 'host'"),
        ("hosts:\n  - [a]\n", 2, "hosts[0]: expected a host name or a mapping"),
        ("hosts:\n  - {host: 12}\n", 2, "hosts[0].host: expected a host name"),
        ("hosts:\n  - {host: 'a b'}\n", 2, "hosts[0].host: expected a host name"),
        ("hosts:\n  - bob@web1\n", 2, "hosts[0].host: put the user in 'user:'"),
        (
            "hosts:\n  - a\n  - {host: b, port: abc}\n",
            3,
            "hosts[1].port: expected an integer 1-65535, got 'abc'",
        ),
        (
            "hosts:\n  - host: b\n    port: 0\n",
            3,
            "hosts[0].port: expected an integer 1-65535, got 0",
        ),
        (
            "hosts:\n  - host: b\n    port: 65536\n",
            3,
            "hosts[0].port: expected an integer 1-65535, got 65536",
        ),
        (
            "hosts:\n  - host: b\n    port: '22'\n",
            3,
            "hosts[0].port: expected an integer 1-65535, got '22'",
        ),
        (
            "hosts:\n  - host: b\n    port: true\n",
            3,
            "hosts[0].port: expected an integer 1-65535, got True",
        ),
        (
            "hosts:\n  - host: b\n    slots: 0\n",
            3,
            "hosts[0].slots: expected a positive integer or 'auto', got 0",
        ),
        (
            "hosts:\n  - host: b\n    slots: many\n",
            3,
            "hosts[0].slots: expected a positive integer or 'auto', got 'many'",
        ),
        (
            "hosts:\n  - host: b\n    slots: 1.5\n",
            3,
            "hosts[0].slots: expected a positive integer or 'auto', got 1.5",
        ),
        (
            "hosts:\n  - host: b\n    connect_timeout: 0\n",
            3,
            "hosts[0].connect_timeout: expected a positive number",
        ),
        (
            "hosts:\n  - host: b\n    connect_timeout: soon\n",
            3,
            "hosts[0].connect_timeout: expected a positive number",
        ),
        (
            "hosts:\n  - host: b\n    user: ''\n",
            3,
            "hosts[0].user: expected a non-empty string, got ''",
        ),
        (
            "hosts:\n  - host: b\n    python: [x]\n",
            3,
            "hosts[0].python: expected a non-empty string, got a list",
        ),
        (
            "hosts:\n  - host: b\n    identity_file: []\n",
            3,
            "hosts[0].identity_file: expected a key file path",
        ),
        (
            "hosts:\n  - host: b\n    identity_file:\n      - k\n      - 7\n",
            5,
            "hosts[0].identity_file[1]: expected a file path, got 7",
        ),
        # duplicates
        (
            "hosts:\n  - a\n  - b\n  - {host: a, port: 22}\n",
            4,
            "hosts[2]: duplicate of hosts[0] (line 2): same host 'a' and port 22",
        ),
        (
            "hosts:\n  - {host: a, port: 2}\n  - {host: a, port: 2}\n",
            3,
            "hosts[1]: duplicate of hosts[0] (line 2)",
        ),
        (
            "hosts:\n  - {host: a, port: 2}\n  - a\n  - 'a:2'\n",
            4,
            "hosts[2]: name 'a:2' clashes with hosts[0] (line 2)",
        ),
        # ssh_config
        ("ssh_config: nope/config\nhosts: [a]\n", 1, "ssh_config: file not found: "),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, line: int, expected: str
) -> None:
    msg = error(tmp_path, text, monkeypatch)
    assert msg.startswith(f"inventory.yaml:{line}: "), msg
    assert expected in msg


def test_missing_explicit_ssh_config_names_resolved_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = error(tmp_path, "hosts: [a]\nssh_config: cfg/missing\n", monkeypatch)
    assert msg.startswith("inventory.yaml:2: ssh_config: file not found: ")
    assert str(tmp_path / "cfg" / "missing") in msg


def test_bad_values_in_ssh_config_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "cfg", "Host a\n  Port nope\n")
    msg = error(tmp_path, "ssh_config: cfg\nhosts:\n  - b\n  - a\n", monkeypatch)
    assert msg.startswith("inventory.yaml:4: hosts[1]: ssh_config sets port 'nope'")
    assert str(tmp_path / "cfg") in msg


def test_unparsable_ssh_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "cfg", "Host a\n  ===\n")
    msg = error(tmp_path, "hosts: [a]\nssh_config: cfg\n", monkeypatch)
    assert msg.startswith("inventory.yaml:2: ssh_config: cannot read ")


def test_parse_inventory_uses_given_path_in_messages() -> None:
    with pytest.raises(InventoryError, match=r"^conf/inv\.yaml:2: hosts\[0\]: unknown key 'prot'"):
        parse_inventory("hosts:\n  - {host: a, prot: 1}\n", "conf/inv.yaml")
