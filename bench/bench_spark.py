"""W6 on Spark: the same word count (``examples/wordcount.py``) with sshmr in local mode,
sshmr on loopback sshd hosts, ``--engine spark`` on ``local[2]`` and a plain Python loop.

Reuses W6's generated text and checks (``bench_wordcount.py``). Each master runs in a
fresh process; the CPU seconds of a row are that process and its children's (sshmr local:
getrusage RUSAGE_CHILDREN, the agent and its workers; Spark: the driver plus the JVM's
process tree read from /proc before the context stops, its Python workers included; the
sshd hosts' CPU is not counted, so that row has none). sshmr local and Spark run with the
same reducers, and their output parts are compared byte for byte. Spark's rows: the JVM's
start (a SparkContext, no job), then the job twice in that context (the first also starts
and warms Spark's Python workers). ``--repeat N`` alternates the
local rows N times (a loaded machine: compare pairs).

    python bench/bench_spark.py [--mb 20] [--hosts 4] [--slots 4] [--repeat 2] [--no-ssh]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_wordcount import REPO, check, count_words, generate, run_master  # noqa: E402
from helpers import write_inventory  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402

SPARK = """
import json, os, resource, sys, time
sys.path.insert(0, {examples!r})
import sshmr
from sshmr.spark.context import new_context
from wordcount import WordCount
tick = os.sysconf("SC_CLK_TCK")
def tree(pid):  # CPU s of the process, its live descendants and their reaped children
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{{entry}}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    with open(f"/proc/{{pid}}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / tick + sum(tree(k) for k in kids)
def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime + tree(sc._gateway.proc.pid)
t = time.time()
sc = new_context({master!r})
out = {{"start_s": time.time() - t, "start_cpu_s": cpu(), "runs": []}}
for _ in range(2):  # cold (the first job of the JVM and its Python workers), then warm
    t, c = time.time(), cpu()
    r = sshmr.run(WordCount(), files=[{data!r}], output={out!r}, runs_dir={runs!r},
                  reducers={reducers}, engine="spark", spark_master={master!r}, overwrite=True)
    out["runs"].append({{"ok": r.ok, "message": r.message, "wall_s": time.time() - t,
                        "cpu_s": cpu() - c}})
sc.stop()
print(json.dumps(out))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=20)
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--reducers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--no-ssh", action="store_true")
    p.add_argument("--data", help="text file to use (generated if missing)")
    p.add_argument("--json-out", default="bench-spark.json")
    args = p.parse_args()
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        os.environ.pop(var, None)
    root = Path(tempfile.mkdtemp(prefix="sshmr-w6s-"))
    data = Path(args.data) if args.data else root / "words.txt"
    if not data.exists():
        generate(data, args.mb)
    mb = data.stat().st_size / 1e6
    report: dict = {"benchmark": "W6 wordcount, sshmr vs Spark",
                    "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "input_mb": round(mb, 1),
                    "load_before": os.getloadavg(), "rows": []}
    print(f"W6 wordcount over {mb:.0f} MB ({data}), {os.cpu_count()} CPUs, load"
          f" {os.getloadavg()[0]:.1f}")
    cluster = None
    try:
        t, cpu = time.time(), time.process_time()
        expected = count_words(data)
        _row("plain Python loop (Counter)", time.time() - t, time.process_time() - cpu, mb,
             report)
        for _ in range(args.repeat):
            out = root / "out-local"
            shutil.rmtree(out, ignore_errors=True)
            before = _children_cpu()
            local = run_master(root, data, "local", None, args.reducers)
            _row(f"sshmr local, R={args.reducers}", local["wall_s"], _children_cpu() - before,
                 mb, report)
            check(out, expected)
            spark = _spark(root, data, args.master, args.reducers)
            check(root / "out-spark", expected)
            same = _parts(root / "out-spark") == _parts(out)
            _row(f"Spark {args.master}: JVM start", spark["start_s"], spark["start_cpu_s"], None,
                 report, "(SparkContext, no job)")
            for run, name in zip(spark["runs"], ("1st job", "2nd job"), strict=True):
                _row(f"Spark {args.master}, R={args.reducers}, {name}", run["wall_s"],
                     run["cpu_s"], mb, report,
                     f"(parts byte-identical to sshmr's: {'yes' if same else 'NO'})")
            assert same, "Spark's parts differ from sshmr's"
        if not args.no_ssh:
            cluster = SshdCluster(root / "cluster", args.hosts, own_homes=False)
            cluster.start()
            inv = write_inventory(cluster, root / "inv.yaml", slots=args.slots)
            ssh = run_master(root, data, "ssh", str(inv), args.hosts * args.slots)
            check(root / "out-ssh", expected)
            _row(f"sshmr {args.hosts} hosts x {args.slots} slots", ssh["wall_s"], None, mb,
                 report)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    report["load_after"] = os.getloadavg()
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    Path(args.json_out).write_text(json.dumps(report, indent=2))
    print(f"(numbers written to {args.json_out})")
    return 0


def _spark(root: Path, data: Path, master: str, reducers: int) -> dict:
    out = root / "out-spark"
    shutil.rmtree(out, ignore_errors=True)
    code = SPARK.format(examples=str(REPO / "examples"), data=str(data), out=str(out),
                        runs=str(root / "runs"), reducers=reducers, master=master)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"Spark failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for run in result["runs"]:
        if not run["ok"]:
            raise SystemExit(f"Spark run failed: {run['message']}")
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parts(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("part-*"))}


def _row(name: str, wall: float, cpu: float | None, mb: float | None, report: dict,
         note: str = "") -> None:
    """One line; ``mb`` None: no data went through (the JVM's start)."""
    cpu_text = f"{cpu:6.1f} CPU s" if cpu is not None else "     – CPU s"
    rate = f"{mb / wall:6.2f} MB/s" if mb else "     – MB/s"
    print(f"  {name:<32} {wall:7.1f} s  {rate}  {cpu_text}  {note}", flush=True)
    report["rows"].append({"name": name, "wall_s": round(wall, 2),
                           "mb_per_s": round(mb / wall, 2) if mb else None,
                           "cpu_s": round(cpu, 2) if cpu is not None else None, "note": note})


if __name__ == "__main__":
    sys.exit(main())
