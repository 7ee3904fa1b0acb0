"""A user-defined Partitioner for the tests: one job per pair of numbers on a line."""

from sshmr import Partitioner


class Pairs(Partitioner):
    def partition(self, inputs):
        for path in inputs:
            with open(path) as f:
                for line in f:
                    a, b = line.split()
                    yield [int(a), int(b)]
