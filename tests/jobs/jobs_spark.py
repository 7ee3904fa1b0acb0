"""MapReduce jobs for the Spark engine tests: a partition() override with counters and
every hook, and a job slower than its timeout."""

import time

from sshmr import MapReduce


class ByLengthWithHooks(MapReduce):
    """Words partitioned by the length of their JSON (not the default crc32), counted;
    init/final hooks on both sides, counters in the mapper, combiner and reducer."""

    def mapper_init(self):
        self.lines = 0

    def mapper(self, _, line):
        self.lines += 1
        for word in line.split():
            self.increment_counter("words", "long" if len(word) > 4 else "short")
            yield word, 1

    def mapper_final(self):
        yield "~lines", self.lines

    def combiner(self, word, counts):
        self.increment_counter("combiner", "calls")
        yield word, sum(counts)

    def reducer_init(self):
        self.keys = 0

    def reducer(self, word, counts):
        self.keys += 1
        self.increment_counter("reducer", "keys")
        yield word, {"n": sum(counts), "chars": len(word)}

    def reducer_final(self):
        yield "~keys-in-this-part", self.keys

    def partition(self, key_json, n):
        return len(key_json) % n


class Sleepy(MapReduce):
    """Each map task sleeps longer than any timeout a test gives."""

    def mapper(self, _, line):
        time.sleep(600)
        yield line, 1

    def reducer(self, key, values):
        yield key, sum(values)
