"""``sshmr hosts``: reach every host of an inventory and check it can run workers."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import ConfigError, HostError
from ..inventory import Host, Inventory, resolve_inventory

PROBE = (
    "import json,os,sys\n"
    "wd=os.path.expanduser(sys.argv[1])\n"
    "r={'python':sys.version.split()[0],'ok_version':sys.version_info>=(3,8),"
    "'cpus':os.cpu_count() or 1,'workdir':wd}\n"
    "try:\n"
    " os.makedirs(wd,0o700,exist_ok=True)\n"
    " p=os.path.join(wd,'.sshmr-probe')\n"
    " open(p,'w').write('ok');os.remove(p)\n"
    " st=os.statvfs(wd);r['disk_free_mb']=st.f_bavail*st.f_frsize//1048576\n"
    "except OSError as e:\n"
    " r['error']='workdir %s is not usable: %s'%(wd,e)\n"
    "print(json.dumps(r))\n"
)


def check_host(host: Host, inv: Inventory, accept_new: bool) -> dict[str, Any]:
    from ..transport.ssh import SshTransport

    report: dict[str, Any] = {"host": host.name, "ok": False}
    t = SshTransport(host, inv.known_hosts, accept_new=accept_new)
    started = time.monotonic()
    try:
        t.connect()
        report["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        status, out, err = t.run([host.python, "-c", PROBE, host.workdir], timeout=30)
        if status != 0:
            hint = " (set python: in the inventory)" if status == 127 else ""
            report["error"] = (f"{host.name}: {host.python} failed with exit {status}: "
                               f"{(err or out).strip()[-200:]}{hint}")
            return report
        probe = json.loads(out.strip().splitlines()[-1])
        report.update(probe)
        report["slots"] = host.slots or probe["cpus"]
        if not probe.pop("ok_version"):
            report["error"] = f"{host.name}: python {probe['python']} is older than 3.8"
        elif "error" in probe:
            report["error"] = f"{host.name}: {probe['error']}; fix workdir in the inventory"
        else:
            report["ok"] = True
    except HostError as exc:
        report["error"] = str(exc)
    except (OSError, ValueError, TimeoutError) as exc:
        report["error"] = f"{host.name}: {exc}"
    finally:
        t.close()
    return report


def check_hosts(inventory: str | Inventory | None, accept_new: bool = False,
                hosts: str | None = None) -> list[dict[str, Any]]:
    """Check every host of ``inventory`` (narrowed to the pattern ``hosts``; without an
    inventory, the ``~/.ssh/config`` aliases ``hosts`` picks)."""
    inv = resolve_inventory(inventory, hosts)
    if inv is None:
        raise ConfigError("give an inventory (-i FILE) or a host pattern (--hosts PATTERN)")
    with ThreadPoolExecutor(max_workers=min(32, len(inv.hosts))) as pool:
        return list(pool.map(lambda h: check_host(h, inv, accept_new), inv.hosts))
