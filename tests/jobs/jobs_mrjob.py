"""mrjob jobs of our own for tests/integration/test_mrjob.py (mrjob's examples cover the
rest): a user-defined protocol with counters and status, and a reducer that raises."""

from mrjob.job import MRJob
from mrjob.protocol import JSONProtocol
from mrjob.step import MRStep


class CsvProtocol:
    """``key<TAB>n1,n2,...`` lines: a protocol written by the user (a list of ints)."""

    def read(self, line):
        key, numbers = line.decode("utf-8").split("\t", 1)
        return key, [int(n) for n in numbers.split(",")]

    def write(self, key, value):
        return (key + "\t" + ",".join(str(n) for n in value)).encode("utf-8")


class SumsAndCounts(MRJob):
    """Reads ``key<TAB>n1,n2,...`` lines; writes ``key<TAB>sum,count`` per key through the
    same protocol (input, internal and output); counts records and sets a status."""

    INPUT_PROTOCOL = CsvProtocol
    INTERNAL_PROTOCOL = CsvProtocol
    OUTPUT_PROTOCOL = CsvProtocol

    def mapper(self, key, numbers):
        self.increment_counter("csv", "records")
        yield key, [sum(numbers), len(numbers)]

    def combiner(self, key, pairs):
        yield key, [sum(column) for column in zip(*pairs, strict=True)]

    def reducer_init(self):
        self.set_status("reducing")

    reducer = combiner


class FailsOnKey(MRJob):
    """Word count whose reducer raises on the word given by --fail-on, in step 2."""

    OUTPUT_PROTOCOL = JSONProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--fail-on", default="")

    def steps(self):
        return [MRStep(mapper=self.words, reducer=self.count), MRStep(reducer=self.check)]

    def words(self, _, line):
        for word in line.split():
            yield word, 1

    def count(self, word, ones):
        yield word, sum(ones)

    def check(self, word, counts):
        if word == self.options.fail_on:
            raise ValueError(f"asked to fail on {word!r}")
        yield word, sum(counts)


if __name__ == "__main__":
    SumsAndCounts.run()
