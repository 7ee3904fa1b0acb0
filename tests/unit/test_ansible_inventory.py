"""Unit tests for Ansible inventories (INI and YAML), host ranges and ``--hosts`` patterns,
and the sshmr YAML inventory's ``groups:``. No SSH. ``ansible-inventory --list`` (from the
test extra's ansible-core) must read the same hosts, groups and variables as sshmr."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
import warnings
from pathlib import Path

import pytest

from sshmr.errors import InventoryError, SshmrWarning
from sshmr.inventory import load_inventory, select_hosts, ssh_config_inventory
from sshmr.inventory.ansible import Source
from sshmr.inventory.ansible_ini import read_ini
from sshmr.inventory.ansible_yaml import read_yaml
from sshmr.inventory.load import parse_any
from sshmr.inventory.parse import _Parser
from sshmr.inventory.patterns import expand_range, select, split_port

INI = """\
# an ungrouped host first
lonely ansible_port=2200

[web]
web[01:03].example.com sshmr_slots=4  # host vars beat group vars
db[a:c]:2222 foo="bar baz"

[web:vars]
sshmr_python=/usr/bin/python3.11
ansible_user=webuser

[prod:children]
web
batch

[prod:vars]
sshmr_slots=2
sshmr_workdir=/srv/sshmr
ansible_user=produser

[batch]
n[0:20:10] ansible_host=10.0.0.9 ansible_ssh_private_key_file=keys/batch

[all:vars]
ansible_user=root
sshmr_connect_timeout=7
"""

YAML = """\
all:
  vars:
    ansible_user: root
  hosts:
    lonely:
      ansible_port: 2200
  children:
    prod:
      vars:
        sshmr_slots: 2
        sshmr_workdir: /srv/sshmr
      children:
        web:
          vars:
            ansible_user: webuser
            sshmr_python: /usr/bin/python3.11
          hosts:
            web[01:03].example.com:
              sshmr_slots: 4
            dbx:2222:
        batch:
          hosts:
            n[a:b]:
              ansible_host: 10.0.0.9
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr("sshmr.inventory.parse.getpass.getuser", lambda: "localme")
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def error(path: Path) -> str:
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# -- ranges and patterns ------------------------------------------------------------------------


def test_ranges_expand_like_ansible() -> None:
    assert expand_range("web[01:03].x") == ["web01.x", "web02.x", "web03.x"]
    assert expand_range("web[8:11]") == ["web8", "web9", "web10", "web11"]
    assert expand_range("db[a:c]") == ["dba", "dbb", "dbc"]
    assert expand_range("n[0:20:10]") == ["n0", "n10", "n20"]
    assert expand_range("r[1:2]c[a:b]") == ["r1ca", "r1cb", "r2ca", "r2cb"]
    assert expand_range("plain.example.com") == ["plain.example.com"]
    for bad, why in [("w[3:1]", "expands to no host"), ("w[1:2:0]", "step"),
                     ("w[01:100]", "same width"), ("w[1:]", "no end"), ("w[a:3]", "letters")]:
        with pytest.raises(ValueError, match=why):
            expand_range(bad)


def test_split_port() -> None:
    assert split_port("web[01:03]:2222") == ("web[01:03]", 2222)
    assert split_port("h.example.com:22") == ("h.example.com", 22)
    assert split_port("[::1]:2200") == ("::1", 2200)
    assert split_port("fe80::1") == ("fe80::1", None)
    assert split_port("web[1:3]") == ("web[1:3]", None)


NAMES = ["web1", "web2", "web3", "db1", "db2", "lb.example.com"]
GROUPS = {"all": tuple(NAMES), "web": ("web1", "web2", "web3"), "db": ("db1", "db2"),
          "prod": ("web1", "web2", "db1"), "webby": ("lb.example.com",)}


@pytest.mark.parametrize("pattern, expect", [
    ("web", ["web1", "web2", "web3"]),
    ("db1", ["db1"]),
    ("web*", ["web1", "web2", "web3", "lb.example.com"]),  # group 'webby' matches too
    ("web:db", NAMES[:5]),
    ("db,web3", ["web3", "db1", "db2"]),
    ("web:!web2", ["web1", "web3"]),
    ("prod:&web", ["web1", "web2"]),
    ("!db", ["web1", "web2", "web3", "lb.example.com"]),
    ("all", NAMES),
    ("*.example.com", ["lb.example.com"]),
    ("~db[0-9]", ["db1", "db2"]),
])
def test_patterns_select_groups_names_globs_unions(pattern: str, expect: list[str]) -> None:
    assert select(pattern, NAMES, GROUPS) == expect


@pytest.mark.parametrize("pattern, why", [
    ("dbx", "no group or host matches 'dbx'"),
    ("web:nope*", "no group or host matches 'nope*'"),
    ("web:&db", "selects no host"),
    ("", "names no group or host"),
    ("web:!", "needs a name"),
])
def test_patterns_that_select_nothing_are_errors(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        select(pattern, NAMES, GROUPS)


# -- INI ----------------------------------------------------------------------------------------


def test_ini_groups_vars_inheritance_and_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "hosts.ini", INI)
    inv = load_inventory(path)
    assert inv.kind == "ansible-ini"
    hosts = {h.name: h for h in inv.hosts}
    assert list(hosts) == ["lonely", "web01.example.com", "web02.example.com",
                           "web03.example.com", "dba", "dbb", "dbc", "n0", "n10", "n20"]
    lonely = hosts["lonely"]
    assert (lonely.port, lonely.user, lonely.slots, lonely.connect_timeout) == (2200, "root",
                                                                                None, 7.0)
    web = hosts["web02.example.com"]  # web (child of prod) beats prod, host var beats both
    assert (web.user, web.slots, web.python, web.workdir) == (
        "webuser", 4, "/usr/bin/python3.11", "/srv/sshmr")
    db = hosts["dbb"]
    assert (db.port, db.slots, db.user) == (2222, 2, "webuser")
    batch = hosts["n10"]
    assert (batch.hostname, batch.user, batch.python) == ("10.0.0.9", "produser", "python3")
    assert batch.identity_files == (str(tmp_path / "keys" / "batch"),)
    assert inv.groups["prod"] == tuple(list(hosts)[1:])
    assert inv.groups["ungrouped"] == ("lonely",)
    picked = load_inventory(path, hosts="batch:web0*:!web02*")
    assert [h.name for h in picked.hosts] == ["web01.example.com", "web03.example.com",
                                              "n0", "n10", "n20"]
    assert picked.pattern == "batch:web0*:!web02*"


def test_file_without_extension_is_sniffed(tmp_path: Path) -> None:
    assert parse_any("[web]\nw1\n", str(tmp_path / "hosts")).kind == "ansible-ini"
    assert [h.name for h in parse_any("w1\nw2\n", str(tmp_path / "hosts")).hosts] == ["w1", "w2"]
    assert parse_any(YAML, str(tmp_path / "hosts")).kind == "ansible-yaml"
    assert parse_any("hosts: [a, b]\n", str(tmp_path / "hosts")).kind == "sshmr"


@pytest.mark.parametrize("text, line, why", [
    ("[web]\nw1\n[web:stuff]\n", 3, "unknown type 'stuff'"),
    ("[web]\nw1 [1:2]\n", 2, "expected key=value, got '[1:2]'"),
    ("[web]\nw1 a='x\n", 2, "cannot read host line"),
    ("[web]\nw[3:1]\n", 2, "expands to no host"),
    ("[web]\nw1\n[db:vars]\nx=1\n", 3, "never declared"),
    ("[web:children]\ndbs\n[web]\nw1\n", 2, "'dbs', which is never declared"),
    ("[web]\nw1\n[web:vars]\njunk\n", 4, "expected key=value"),
    ("[web ]\nw1\n", 1, "invalid section line"),
    ("[web]\nw1 sshmr_slots=0\n", 2, "w1 sshmr_slots: expected a positive integer"),
    ("[web]\nw1 ansible_port=http\n", 2, "w1 ansible_port: expected an integer 1-65535"),
    ("[web]\nw1 ansible_user='a b'\n", 2, "cannot be a user name"),
    ("[a:children]\nb\n[b:children]\na\n", 1, "its own ancestor"),
])
def test_ini_errors_name_file_and_line(tmp_path: Path, text: str, line: int, why: str) -> None:
    msg = error(write(tmp_path / "hosts.ini", text))
    assert msg.startswith(f"{tmp_path / 'hosts.ini'}:{line}: "), msg
    assert why in msg, msg


def test_unknown_variables_warn_once_and_are_not_fatal(tmp_path: Path) -> None:
    path = write(tmp_path / "hosts.ini", "[web]\nw1 sshmr_slot=3\nw2 sshmr_slot=3 http=80\n"
                                         "[web:vars]\nansible_password=x\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inv = load_inventory(path)
    assert [h.slots for h in inv.hosts] == [None, None]
    msgs = [str(w.message) for w in caught if issubclass(w.category, SshmrWarning)]
    assert len(msgs) == 2, msgs  # one per variable, not per host; playbook vars are quiet
    assert any(m.startswith(f"{path}:2: sshmr_slot ") and "'sshmr_slots'" in m for m in msgs)
    assert any(m.startswith(f"{path}:5: ansible_password ") for m in msgs)


def test_ini_known_hosts_and_ssh_config_from_all_vars(tmp_path: Path) -> None:
    write(tmp_path / "cfg", "Host w1\n  HostName 10.1.1.1\n  Port 2201\n  User cfguser\n")
    path = write(tmp_path / "hosts.ini", "w1\n[all:vars]\nsshmr_known_hosts=kh\n"
                                         "sshmr_ssh_config=cfg\n")
    inv = load_inventory(path)
    assert inv.known_hosts == str(tmp_path / "kh") and inv.ssh_config == str(tmp_path / "cfg")
    h = inv.hosts[0]
    assert (h.hostname, h.port, h.user) == ("10.1.1.1", 2201, "cfguser")


# -- YAML ---------------------------------------------------------------------------------------


def test_yaml_form(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path / "hosts.yml", YAML))
    assert inv.kind == "ansible-yaml"
    hosts = {h.name: h for h in inv.hosts}
    assert list(hosts) == ["lonely", "web01.example.com", "web02.example.com",
                           "web03.example.com", "dbx", "na", "nb"]
    assert (hosts["lonely"].port, hosts["lonely"].user) == (2200, "root")
    assert (hosts["web03.example.com"].slots, hosts["web03.example.com"].user) == (4, "webuser")
    assert (hosts["dbx"].port, hosts["dbx"].slots, hosts["dbx"].python) == (
        2222, 2, "/usr/bin/python3.11")
    assert (hosts["nb"].hostname, hosts["nb"].workdir) == ("10.0.0.9", "/srv/sshmr")
    assert inv.groups["web"] == ("web01.example.com", "web02.example.com",
                                 "web03.example.com", "dbx")
    assert [h.name for h in load_inventory(tmp_path / "hosts.yml", "batch").hosts] == [
        "na", "nb"]


@pytest.mark.parametrize("text, line, why", [
    ("all:\n  children:\n    web:\n      host:\n        w1:\n", 4, "unknown key 'host'"),
    ("all:\n  hosts:\n    - w1\n", 3, "hosts must be a mapping"),
    ("all:\n  hosts:\n    w[9:1]:\n", 3, "expands to no host"),
    ("all:\n  hosts:\n    w1:\n      sshmr_slots: many\n", 4, "w1 sshmr_slots"),
])
def test_yaml_errors_name_file_and_line(tmp_path: Path, text: str, line: int, why: str) -> None:
    msg = error(write(tmp_path / "hosts.yml", text))
    assert msg.startswith(f"{tmp_path / 'hosts.yml'}:{line}: "), msg
    assert why in msg, msg


# -- sshmr YAML groups and ~/.ssh/config --------------------------------------------------------


def test_sshmr_yaml_groups(tmp_path: Path) -> None:
    path = write(tmp_path / "inventory.yaml", """\
        hosts: [web1, web2, {host: db1, port: 2222}, db1]
        groups:
          web: [web1, web2]
          db: [db1]
          prod: [web, db1:2222]
        """)
    inv = load_inventory(path)
    assert inv.kind == "sshmr"
    assert inv.groups["db"] == ("db1:2222", "db1")
    assert inv.groups["prod"] == ("web1", "web2", "db1:2222")
    assert [h.name for h in load_inventory(path, "prod:!web2").hosts] == ["web1", "db1:2222"]
    with pytest.raises(InventoryError, match=r"inventory.yaml: --hosts 'dbz': no group"):
        load_inventory(path, "dbz")
    bad = write(tmp_path / "bad.yaml", "hosts: [a]\ngroups:\n  g: [a, b]\n")
    assert error(bad).startswith(f"{bad}:3: groups.g[1]: 'b' is neither a host")


def test_ssh_config_aliases_as_inventory(home: Path) -> None:
    write(home / ".ssh" / "config", "Host web1 web2\n  HostName 10.0.0.1\nHost db1\n"
                                    "  Port 2200\nHost *\n  User me\n")
    inv = ssh_config_inventory("web*")
    assert [(h.name, h.hostname, h.user) for h in inv.hosts] == [
        ("web1", "10.0.0.1", "me"), ("web2", "10.0.0.1", "me")]
    assert inv.kind == "ssh_config" and inv.pattern == "web*"
    assert ssh_config_inventory("db1").hosts[0].port == 2200
    with pytest.raises(InventoryError, match="no group or host matches 'dbx'"):
        ssh_config_inventory("dbx")


def test_select_hosts_on_a_loaded_inventory(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path / "hosts.ini", INI))
    assert [h.name for h in select_hosts(inv, "ungrouped").hosts] == ["lonely"]


# -- the same reading as ansible-inventory ------------------------------------------------------


def _ours(path: Path) -> dict:
    """hosts -> vars and group -> direct hosts/children as our readers see them."""
    parser = _Parser(str(path))
    src = Source(parser, "")
    if path.suffix == ".ini":
        read_ini(path.read_text(), src)
    else:
        read_yaml(parser.load_yaml(path.read_text()), src)
    merged = src.settle()  # the variables after inheritance that the Hosts are built from
    hostvars = {h: {k: v.value for k, v in hv.items()} for h, hv in merged.items()}
    groups = {g.name: {"hosts": sorted(g.hosts), "children": sorted(g.children)}
              for g in src.groups.values() if g.hosts or g.children}
    return {"hostvars": hostvars, "groups": groups}


def _ansibles(path: Path, tmp_path: Path) -> dict:
    exe = shutil.which("ansible-inventory")
    assert exe, "ansible-inventory not found: pip install -e '.[test]' (ansible-core)"
    env = {"PATH": str(Path(exe).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "LANG": "C.UTF-8",
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"}
    proc = subprocess.run([exe, "-i", str(path), "--list"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    meta = data.pop("_meta")
    groups = {name: {"hosts": sorted(g.get("hosts", [])), "children": sorted(g.get("children",
              []))} for name, g in data.items() if g.get("hosts") or g.get("children")}
    return {"hostvars": meta["hostvars"], "groups": groups}


@pytest.mark.parametrize("name, text", [("hosts.ini", INI), ("hosts.yml", YAML)])
def test_ansible_inventory_reads_the_same(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path / name, text)
    ours, theirs = _ours(path), _ansibles(path, tmp_path)
    assert ours["groups"] == theirs["groups"]
    assert ours["hostvars"] == theirs["hostvars"]
