"""Word count, the MapReduce hello world.

    sshmr run examples/wordcount.py:WordCount examples/*.txt --output out --reducers 4

Each output line is ``"word"<TAB>count``; words are lower-cased and stripped of
punctuation at their ends.
"""

from sshmr import MapReduce

PUNCTUATION = ".,;:!?\"'()[]{}<>«»-_*"


class WordCount(MapReduce):
    def mapper(self, key, line):
        for word in line.split():
            word = word.strip(PUNCTUATION).lower()
            if word:
                yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)
