"""MapReduce jobs for the tests: exact word counts, several steps, map-only, faults."""

import json
import os
import signal

from sshmr import MapReduce, MRStep


class WordCount(MapReduce):
    def mapper(self, key, line):
        for word in line.split():
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        self.increment_counter("test", "reduced keys")
        yield word, sum(counts)


class WordCountNoCombiner(MapReduce):
    def mapper(self, key, line):
        for word in line.split():
            yield word.lower(), 1

    def reducer(self, word, counts):
        yield word, sum(counts)


class LengthsThenTotals(MapReduce):
    """Three steps: word counts, then counts per word length, then one grand total
    (a map-only last step that renames keys)."""

    def steps(self):
        return [MRStep(mapper=self.words, reducer=self.add),
                MRStep(mapper=self.by_length, combiner=self.add, reducer=self.add),
                MRStep(mapper=self.label)]

    def words(self, _, line):
        for word in line.split():
            yield word, 1

    def add(self, key, values):
        yield key, sum(values)

    def by_length(self, word, count):
        yield len(word), count

    def label(self, length, count):
        yield f"len-{length}", count


class InitFinal(MapReduce):
    """mapper_init/_final and reducer_init/_final: per-task sums."""

    def mapper_init(self):
        self.lines = 0

    def mapper(self, _, line):
        self.lines += 1
        return ()

    def mapper_final(self):
        yield "lines", self.lines

    def reducer_init(self):
        self.keys = 0

    def reducer(self, key, values):
        self.keys += 1
        yield key, sum(values)

    def reducer_final(self):
        yield "~reducer-keys", self.keys


class Faulty(MapReduce):
    """Word count that misbehaves as its input says: lines ``!bad-key``, ``!raise``
    (the reducer raises), ``!die-map <dir>`` / ``!die-reduce <dir>`` (the worker kills
    itself with SIGKILL, the first time only: a marker file in <dir> remembers)."""

    def mapper(self, _, line):
        if line.startswith("!bad-key"):
            yield {1, 2}, 1
            return
        if line.startswith("!die-map "):
            _die_once(line.split()[1], "map")
            return
        if line.startswith("!die-reduce "):
            yield "!die-reduce", line.split()[1]
            return
        if line.startswith("!raise"):
            yield "!raise", 1
            return
        for word in line.split():
            yield word, 1

    def reducer(self, key, values):
        if key == "!raise":
            raise ValueError("the reducer was told to raise")
        if key == "!die-reduce":
            _die_once(next(iter(values)), "reduce")
            return
        yield key, sum(values)


class SlowMaps(Faulty):
    """Faulty whose map tasks take a while, so that every host gets some."""

    def mapper_init(self):
        import time

        time.sleep(0.3)


def _die_once(where, phase):
    marker = os.path.join(where, "died-" + phase)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, json.dumps({"pid": os.getpid()}).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


class ManyValues(MapReduce):
    """One key with many values: the reducer must stream them."""

    def mapper(self, _, line):
        n = int(line)
        for i in range(n):
            yield "k", i

    def reducer(self, key, values):
        total = count = 0
        for v in values:
            total += v
            count += 1
        yield key, [count, total]


class SlowReduce(WordCountNoCombiner):
    """Word count whose reduce tasks take a while; each marks its start in $SLOW_DIR."""

    def reducer_init(self):
        import tempfile
        import time

        tempfile.mkstemp(dir=os.environ["SLOW_DIR"])
        time.sleep(1.5)
