"""The SSH host inventory: parse the inventory YAML and resolve it into ``Host`` records.

Ansible inventories (INI and YAML, ``ansible*.py``), host ranges and ``--hosts`` patterns
(``patterns``), and the choice of format (``load``) live here too.

This module owns the inventory file format (``defaults``, ``known_hosts``, ``ssh_config``,
``hosts``), its validation, and the merge of each entry with the user's OpenSSH client config.
Precedence for every field is: per-host value > ``defaults`` > ssh_config (HostName, Port,
User, IdentityFile, ProxyJump, ConnectTimeout) > built-in default. It only records the
known_hosts path; reading and verifying host keys is the transport's job. Every problem is
an ``InventoryError`` with a one-line ``file:line: field: problem`` message. Master-side only.

Like OpenSSH, it refuses a host name with shell metacharacters (ssh_config may hand it to a
shell: ``Match exec``) and a private key file that others may read (``key_file_problem``).
"""

from .load import load_inventory, resolve_inventory, select_hosts, ssh_config_inventory
from .model import Host, Inventory, key_file_problem
from .parse import parse_inventory

__all__ = ["Host", "Inventory", "key_file_problem", "load_inventory", "parse_inventory",
           "resolve_inventory", "select_hosts", "ssh_config_inventory"]
