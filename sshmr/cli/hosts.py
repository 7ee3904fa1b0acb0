"""Commands about the hosts: ``hosts`` (preflight), ``hosts drain|undrain|add`` (a running
run's hosts, see ``fleet``) and ``gc`` (remote leftovers)."""

from __future__ import annotations

import json
import sys

import click

from ..errors import ConfigError
from .app import HOSTS, RUNS_DIR, main

INVENTORY = click.option("-i", "--inventory", type=click.Path(dir_okay=False),
                         help="Host inventory: sshmr YAML, or an Ansible INI/YAML inventory.")


def _need_hosts(inventory: str | None, hosts: str | None) -> None:
    if inventory is None and hosts is None:
        raise ConfigError("give an inventory (-i FILE) or a host pattern (--hosts PATTERN,"
                          " Host aliases of ~/.ssh/config)")


@main.group("hosts", invoke_without_command=True,
            short_help="Check the hosts; drain, undrain or add them mid-run.")
@INVENTORY
@HOSTS
@click.option("--json", "as_json", is_flag=True)
@click.option("--accept-new-hosts", is_flag=True)
@click.option("--list", "list_only", is_flag=True,
              help="Only list the selected hosts and their settings; connect to none.")
@click.pass_context
def hosts_cmd(ctx: click.Context, inventory: str | None, hosts: str | None, as_json: bool,
              accept_new_hosts: bool, list_only: bool) -> None:
    """Preflight: reach each host, check python3, its CPUs, free disk and the workdir.

    With a subcommand, change the hosts of a running run: drain, undrain, add.
    """
    from ..engine.preflight import check_hosts

    if ctx.invoked_subcommand is not None:
        return
    _need_hosts(inventory, hosts)
    if list_only:
        _list_hosts(inventory, hosts, as_json)
        return
    reports = check_hosts(inventory, accept_new=accept_new_hosts, hosts=hosts)
    if as_json:
        click.echo(json.dumps(reports))
    else:
        for r in reports:
            if r["ok"]:
                click.echo(f"ok    {r['host']}: python {r['python']}, {r['cpus']} cpus, "
                           f"{r['slots']} slots, {r['disk_free_mb']} MB free in {r['workdir']}"
                           f" ({r['latency_ms']} ms)")
            else:
                click.echo(f"FAIL  {r['error']}")
    if not any(r["ok"] for r in reports):
        sys.exit(3)
    sys.exit(0 if all(r["ok"] for r in reports) else 1)


def _list_hosts(inventory: str | None, hosts: str | None, as_json: bool) -> None:
    from ..inventory import resolve_inventory

    inv = resolve_inventory(inventory, hosts)
    assert inv is not None
    rows = []
    for h in inv.hosts:
        groups = [g for g, names in inv.groups.items()
                  if h.name in names and g not in ("all", "ungrouped")]
        rows.append({"host": h.name, "hostname": h.hostname, "port": h.port, "user": h.user,
                     "slots": h.slots, "python": h.python, "workdir": h.workdir,
                     "groups": groups})
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        groups = ",".join(r["groups"]) or "-"
        click.echo(f"{r['host']:<20} {r['user']}@{r['hostname']}:{r['port']}  slots "
                   f"{r['slots'] or 'auto'}  python {r['python']}  workdir {r['workdir']}"
                   f"  groups {groups}")


@main.command("gc", short_help="Remove remote run directories left behind.")
@INVENTORY
@HOSTS
@RUNS_DIR
@click.option("--all", "remove_all", is_flag=True,
              help="Also remove interrupted runs' and unknown runs' directories.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def gc_cmd(inventory: str | None, hosts: str | None, runs_dir: str, remove_all: bool,
           dry_run: bool) -> None:
    """Remove remote run directories that crashed or interrupted runs left behind.

    Runs whose master was killed are kept (each line says how to resume it) unless --all;
    --dry-run lists exactly what a real gc would remove.
    """
    from ..engine.gc import collect_garbage

    _need_hosts(inventory, hosts)
    items = collect_garbage(inventory, runs_dir, remove_all=remove_all, dry_run=dry_run,
                            hosts=hosts)
    for item in items:
        if "error" in item:
            click.echo(f"FAIL     {item['error']}")
        else:
            verb = ("kept" if not item["remove"] else "would remove" if dry_run
                    else "removed")
            why = f" - {item['why']}" if item["why"] else ""
            click.echo(f"{verb:<8} {item['host']}:{item['path']} ({item['state']}){why}")
    if not any(item.get("remove") for item in items):
        click.echo("nothing to remove")
