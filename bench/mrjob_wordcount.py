"""The W6 word count written for mrjob (``python mrjob_wordcount.py -r local INPUT``): the
same words as ``examples/wordcount.py``, to time mrjob's local runner on the same input."""

from mrjob.job import MRJob

PUNCTUATION = ".,;:!?\"'()[]{}<>«»-_*"


class MRWordCount(MRJob):
    def mapper(self, _, line):
        for word in line.split():
            word = word.strip(PUNCTUATION).lower()
            if word:
                yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


if __name__ == "__main__":
    MRWordCount.run()
