"""MapReduce test helpers: generated text, the plain-Python answer, reading an output dir."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

WORDS = ["alpha", "Beta", "gamma", "δέλτα", "epsilon", "zeta", "ÉTÉ", "naïve", "x", "a\"q",
         "tab\\t", "日本", "42", "null"]


def make_text(path: Path, lines: int, seed: int = 1, gz: bool = False) -> Path:
    rng = random.Random(seed)
    vocab = WORDS + [f"w{i}" for i in range(300)]
    text = "".join(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) + "\n"
                   for _ in range(lines))
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def word_counts(*paths: Path) -> dict[str, int]:
    counts: Counter = Counter()
    for p in paths:
        data = p.read_bytes()
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()
        for line in text.splitlines():
            counts.update(w.lower() for w in line.split())
    return dict(counts)


def read_output(out: Path, parts: int | None = None) -> dict:
    """The output as a dict; checks _SUCCESS, the part names and the sort within parts."""
    assert (out / "_SUCCESS").exists(), f"{out} has no _SUCCESS"
    names = sorted(p.name for p in out.iterdir() if p.name != "_SUCCESS")
    if parts is not None:
        assert names == [f"part-{i:05d}" for i in range(parts)], names
    result: dict = {}
    for name in names:
        raw = (out / name).read_bytes()
        lines = raw.decode("utf-8").splitlines()
        keys = [line.split("\t", 1)[0] for line in lines]
        assert keys == sorted(keys, key=str.encode), f"{name} is not sorted by key"
        for line in lines:
            k, v = line.split("\t")
            assert json.dumps(json.loads(k), ensure_ascii=False, separators=(",", ":")) == k
            key = json.loads(k)
            assert key not in result, f"key {k} appears twice"
            result[key] = json.loads(v)
    return result


def output_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}
