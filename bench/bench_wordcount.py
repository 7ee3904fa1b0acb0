"""W6: MapReduce word count over generated text, sshmr vs mrjob's local runner vs a plain
``collections.Counter`` loop.

Generates ``--mb`` MB of text (a Zipf-like vocabulary, reused from ``--data`` if there),
then in one run: the Counter loop (one process), sshmr in local mode, sshmr on a
loopback sshd cluster (``--hosts`` x ``--slots``, started here from the test fixture
code), and ``python bench/mrjob_wordcount.py -r local`` (if mrjob is installed). Each
sshmr master runs in a fresh process that reports its own peak RSS. Prints MB/s, peak
master RSS and the shuffle volume, checks every output against the Counter's, and writes
the numbers as JSON (``--json-out``).

    python bench/bench_wordcount.py [--mb 200] [--hosts 4] [--slots 4] [--no-mrjob]
"""

from __future__ import annotations

import argparse
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
              runs_dir={runs!r}, reducers={reducers})
import sqlite3
meta = dict(sqlite3.connect({runs!r} + "/" + r.run_id + "/journal.sqlite").execute(
    "SELECT key, value FROM meta"))
print(json.dumps({{"ok": r.ok, "message": r.message, "wall_s": time.time() - t,
                  "tasks": len(r),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "shuffle_mb": json.loads(meta["mapreduce"])["shuffle_bytes"] / 2**20}}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--data", help="text file to use (generated if missing)")
    p.add_argument("--no-mrjob", action="store_true")
    p.add_argument("--json-out", default="bench-wordcount.json")
    args = p.parse_args()
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        os.environ.pop(var, None)
    root = Path(tempfile.mkdtemp(prefix="sshmr-w6-"))
    data = Path(args.data) if args.data else root / "words.txt"
    if not data.exists():
        generate(data, args.mb)
    mb = data.stat().st_size / 1e6
    report = {"benchmark": "W6 wordcount", "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
              "input_mb": round(mb, 1), "machine": {"cpus": os.cpu_count(),
                                                   "python": platform.python_version()},
              "rows": []}
    print(f"W6 wordcount over {mb:.0f} MB of text ({data}), {os.cpu_count()} CPUs")
    cluster = None
    try:
        t = time.time()
        expected = count_words(data)
        row("Counter loop (1 process)", time.time() - t, mb, report)

        local = run_master(root, data, "local", None, os.cpu_count() or 1)
        check(root / "out-local", expected)
        row("sshmr local", local["wall_s"], mb, report, local)

        cluster = SshdCluster(root / "cluster", args.hosts, own_homes=False)
        cluster.start()
        inv = write_inventory(cluster, root / "inv.yaml", slots=args.slots)
        ssh = run_master(root, data, "ssh", str(inv), args.hosts * args.slots)
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
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2))
    print(f"(numbers written to {args.json_out})")
    return 0


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
    print(line, flush=True)
    report["rows"].append(entry)


if __name__ == "__main__":
    sys.exit(main())
