"""W6: MapReduce word count over generated text, sshmr vs Dask distributed vs mrjob's local
runner vs a plain ``collections.Counter`` loop.

Generates ``--mb`` MB of text (a Zipf-like vocabulary, reused from ``--data`` if there),
then in one run: the Counter loop (one process), Dask distributed (``LocalCluster`` of 2
worker processes, 1 thread each; ``read_text().map_partitions(words).frequencies()``, the
same tokenisation; timed from a running cluster: cluster start excluded, and printed apart;
if ``dask[distributed]`` is installed: ``pip install -e '.[bench]'``), sshmr in local mode,
sshmr on a loopback sshd cluster (``--hosts`` x ``--slots``, started here from the test
fixture code), and ``python bench/mrjob_wordcount.py -r local`` (if mrjob is installed).
Each sshmr master and the Dask client run in a fresh process; a master reports its own
peak RSS. Prints MB/s, peak master RSS and the shuffle volume, checks every output against
the Counter's, and writes the numbers as JSON (``--json-out``).

    python bench/bench_wordcount.py [--mb 200] [--hosts 4] [--slots 4] [--no-mrjob]
        [--no-dask] [--repeat 3]

``--repeat N`` runs the whole set N times, alternating, and prints the median of each row.
``--one-key N`` instead shows a reduce task's memory: one map task yields N values of one key
(no combiner), then a reduce task over them runs in a fresh process with 64 MiB of sort
memory and prints its peak RSS (for N = 10^6 and 10^7 the same: values are streamed).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

from helpers import write_inventory  # noqa: E402
from sshd_cluster import SshdCluster  # noqa: E402

PUNCTUATION = ".,;:!?\"'()[]{}<>«»-_*"
MASTER = """
import json, resource, sys, time
sys.path.insert(0, {examples!r})
import sshmr
from wordcount import WordCount
t = time.time()
r = sshmr.run(WordCount(), [{data!r}], output={out!r}, inventory={inv!r},
              runs_dir={runs!r}, reducers={reducers}, overwrite=True)
import sqlite3
meta = dict(sqlite3.connect({runs!r} + "/" + r.run_id + "/journal.sqlite").execute(
    "SELECT key, value FROM meta"))
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"ok": r.ok, "message": r.message, "wall_s": time.time() - t,
                  "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime + ru.ru_utime
                  + ru.ru_stime + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
                  "tasks": len(r),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "shuffle_mb": json.loads(meta["mapreduce"])["shuffle_bytes"] / 2**20}}))
"""
DASK = """
import json, os, sys, time
sys.path.insert(0, {bench!r})
from dask.distributed import Client, LocalCluster
import dask.bag as db
from bench_wordcount import dask_words
t = time.time()
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                       dashboard_address=None)
client = Client(cluster)
start = time.time() - t
t = time.time()
blocksize = max(1 << 20, os.path.getsize({data!r}) // 4 + 1)  # 2 partitions per worker
freq = dict(db.read_text({data!r}, blocksize=blocksize).map_partitions(dask_words)
            .frequencies().compute())
wall = time.time() - t
client.close(); cluster.close()
with open({out!r}, "w") as f:
    json.dump(freq, f)
print(json.dumps({{"wall_s": wall, "start_s": start}}))
"""


ONE_KEY = """
import json, os, resource, sys, time
sys.path.insert(0, {bench!r})
from sshmr.remote.mrfiles import concat_segments, read_trailer
from sshmr.remote.mrtask import run_task
from bench_wordcount import OneKey
work, n, phase = {work!r}, {n}, {phase!r}
mr = {{"step": 0, "task": 0, "memory": 64 << 20, "source": "one key"}}
t = time.time()
if phase == "map":
    with open(work + "/in", "w") as f:
        f.write("%d\\n" % n)
    run_task(OneKey(), {{"file": work + "/in", "mr": dict(mr, phase="map", parts=1, text=True)}})
    os.makedirs(work + "/r", exist_ok=True)
    concat_segments([(work + "/mr-out", *read_trailer(work + "/mr-out")["parts"][0])],
                    work + "/r/in", {{}})
else:
    out = run_task(OneKey(), {{"file": work + "/r/in", "mr": dict(mr, phase="reduce", parts=1)}})
    with open(out.path) as f:
        line = f.readline()
print(json.dumps({{"s": time.time() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def one_key(n: int) -> None:
    """Peak RSS of a reduce task over one key with ``n`` values (and of the map task)."""
    root = Path(tempfile.mkdtemp(prefix="sshmr-onekey-"))
    try:
        for phase in ("map", "reduce"):
            code = ONE_KEY.format(bench=str(BENCH), work=str(root), n=n, phase=phase)
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"one-key {phase} failed:\n{proc.stderr[-3000:]}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            size = os.path.getsize(root / ("in" if phase == "map" else "r/in")) / 1e6
            print(f"  one key, {n} values: {phase} task {out['s']:.1f} s, peak RSS"
                  f" {out['rss_mb']:.0f} MB (sort memory 64 MiB, input {size:.0f} MB)",
                  flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def dask_words(lines: list[str]) -> list[str]:
    """The words of a Dask partition, tokenised as the Counter loop and the mappers do."""
    out = []
    for line in lines:
        for word in line.split():
            word = word.strip(PUNCTUATION).lower()
            if word:
                out.append(word)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--data", help="text file to use (generated if missing)")
    p.add_argument("--no-mrjob", action="store_true")
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="runs of the whole set; medians")
    p.add_argument("--json-out", default="bench-wordcount.json")
    p.add_argument("--one-key", type=int, metavar="N",
                   help="only show a reduce task's peak RSS for one key with N values")
    args = p.parse_args()
    if args.one_key:
        one_key(args.one_key)
        return 0
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        os.environ.pop(var, None)
    # sshmr byte-compiled, as `pip install` leaves it (and Dask and mrjob): an editable
    # checkout under PYTHONDONTWRITEBYTECODE would compile the engine in every master timed
    compileall.compile_dir(str(REPO / "sshmr"), quiet=1)
    root = Path(tempfile.mkdtemp(prefix="sshmr-w6-"))
    data = Path(args.data) if args.data else root / "words.txt"
    if not data.exists():
        generate(data, args.mb)
    mb = data.stat().st_size / 1e6
    report = {"benchmark": "W6 wordcount", "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
              "input_mb": round(mb, 1), "machine": {"cpus": os.cpu_count(),
                                                   "python": platform.python_version()},
              "load_avg_start": os.getloadavg()[0], "rows": []}
    print(f"W6 wordcount over {mb:.0f} MB of text ({data}), {os.cpu_count()} CPUs, load"
          f" average {os.getloadavg()[0]:.2f}")
    cluster = None
    runs: list[dict] = []
    try:
        expected = count_words(data)
        cluster = SshdCluster(root / "cluster", args.hosts, own_homes=False)
        cluster.start()
        inv = write_inventory(cluster, root / "inv.yaml", slots=args.slots)
        for i in range(args.repeat):
            if args.repeat > 1:
                print(f"run {i + 1} of {args.repeat}:")
            one = {"rows": []}
            one_set(args, root, data, mb, expected, str(inv), one)
            runs.append(one)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.repeat > 1:
        print(f"median of {args.repeat} (load average {os.getloadavg()[0]:.2f}):")
        for r, entry in enumerate(runs[0]["rows"]):
            walls = sorted(run["rows"][r]["wall_s"] for run in runs)
            median = dict(entry, wall_s=walls[len(walls) // 2],
                          mb_per_s=round(mb / walls[len(walls) // 2], 2), runs=walls)
            print(f"  {entry['name']:<28} {median['wall_s']:7.2f} s  {median['mb_per_s']:6.1f}"
                  f" MB/s   (runs: {', '.join(f'{w:.2f}' for w in walls)})")
            report["rows"].append(median)
    else:
        report["rows"] = runs[0]["rows"]
    report["load_avg_end"] = os.getloadavg()[0]
    Path(args.json_out).write_text(json.dumps(report, indent=2))
    print(f"(numbers written to {args.json_out})")
    return 0


def one_set(args: argparse.Namespace, root: Path, data: Path, mb: float,
            expected: dict[str, int], inv: str, report: dict) -> None:
    t = time.time()
    count_words(data)
    row("Counter loop (1 process)", time.time() - t, mb, report)

    if not args.no_dask:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            print("Dask: not installed (pip install 'dask[distributed]'); skipped")
        else:
            out = run_dask(root, data, expected)
            row("Dask distributed, 2 workers", out["wall_s"], mb, report)
            print(f"    (Dask: cluster start {out['start_s']:.1f} s, not included)")

    local = run_master(root, data, "local", None, os.cpu_count() or 1)
    check(root / "out-local", expected)
    row("sshmr local", local["wall_s"], mb, report, local)

    ssh = run_master(root, data, "ssh", inv, args.hosts * args.slots)
    check(root / "out-ssh", expected)
    row(f"sshmr {args.hosts} hosts x {args.slots} slots", ssh["wall_s"], mb, report, ssh)

    if not args.no_mrjob:
        try:
            import mrjob  # noqa: F401
        except ImportError:
            print("mrjob: not installed (pip install mrjob); skipped")
        else:
            t = time.time()
            with open(root / "mrjob.out", "wb") as out:
                subprocess.run([sys.executable, str(BENCH / "mrjob_wordcount.py"), "-r",
                                "local", str(data)], stdout=out, stderr=subprocess.DEVNULL,
                               check=True)
            wall = time.time() - t
            got = {}
            for line in (root / "mrjob.out").read_text(encoding="utf-8").splitlines():
                k, v = line.split("\t")
                got[json.loads(k)] = json.loads(v)
            assert got == expected, "mrjob's output differs from the Counter's"
            row("mrjob 0.7.4 -r local", wall, mb, report)


def run_dask(root: Path, data: Path, expected: dict[str, int]) -> dict:
    """Dask distributed's word count in a fresh process; checks its counts."""
    out = root / "dask.json"
    code = DASK.format(bench=str(BENCH), data=str(data), out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"Dask failed:\n{proc.stderr[-3000:]}")
    assert json.loads(out.read_text()) == expected, "Dask's counts differ from the Counter's"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate(path: Path, mb: int) -> None:
    rng = random.Random(6)
    letters = "abcdefghijklmnopqrstuvwxyzéü"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 10)))
             for _ in range(100_000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    punct = ["", "", "", ",", ".", "!"]
    with open(path, "w", encoding="utf-8") as f:
        size = 0
        while size < mb * 1_000_000:
            words = rng.choices(vocab, weights, k=120_000)
            lines = [" ".join(w.capitalize() + rng.choice(punct) if i % 7 == 0 else w
                              for i, w in enumerate(words[j:j + 12]))
                     for j in range(0, len(words), 12)]
            chunk = "\n".join(lines) + "\n"
            f.write(chunk)
            size += len(chunk.encode())


def count_words(path: Path) -> dict[str, int]:
    counts: Counter = Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            for word in line.split():
                word = word.strip(PUNCTUATION).lower()
                if word:
                    counts[word] += 1
    return dict(counts)


def run_master(root: Path, data: Path, name: str, inv: str | None, reducers: int) -> dict:
    code = MASTER.format(examples=str(REPO / "examples"), data=str(data),
                         out=str(root / f"out-{name}"), inv=inv, runs=str(root / "runs"),
                         reducers=reducers)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"sshmr {name} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not out["ok"]:
        raise SystemExit(f"sshmr {name} run failed: {out['message']}")
    return out


def check(out: Path, expected: dict[str, int]) -> None:
    got = {}
    for part in sorted(out.glob("part-*")):
        for line in part.read_text(encoding="utf-8").splitlines():
            k, v = line.split("\t")
            got[json.loads(k)] = json.loads(v)
    assert got == expected, f"{out}: output differs from the Counter's"


def row(name: str, wall: float, mb: float, report: dict, extra: dict | None = None) -> None:
    line = f"  {name:<28} {wall:7.1f} s  {mb / wall:6.1f} MB/s"
    entry = {"name": name, "wall_s": round(wall, 2), "mb_per_s": round(mb / wall, 2)}
    if extra:
        line += (f"   master peak RSS {extra['rss_mb']:.0f} MB, shuffle {extra['shuffle_mb']:.1f}"
                 f" MB, {extra['tasks']} tasks")
        entry.update(rss_mb=round(extra["rss_mb"], 1), shuffle_mb=round(extra["shuffle_mb"], 2),
                     tasks=extra["tasks"])
        if "cpu_s" in extra:  # master + its local workers (a lab's workers run under sshd)
            line += f", master+children CPU {extra['cpu_s']:.1f} s"
            entry["cpu_s"] = round(extra["cpu_s"], 2)
    print(line, flush=True)
    report["rows"].append(entry)


def _one_key_job() -> type:
    from sshmr import MapReduce

    class OneKeyJob(MapReduce):
        def mapper(self, key, line):
            for i in range(int(line)):
                yield "k", i

        def reducer(self, key, values):
            n = total = 0
            for v in values:
                n += 1
                total += v
            yield key, [n, total]

    OneKeyJob.__name__ = OneKeyJob.__qualname__ = "OneKey"
    return OneKeyJob


def __getattr__(name: str) -> type:
    if name == "OneKey":
        return _one_key_job()
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
