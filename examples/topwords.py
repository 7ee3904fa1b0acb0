"""The most frequent words, and the longest line of each of them: two steps.

    sshmr run examples/topwords.py:TopWords examples/*.txt --output top

Step 1 counts words (with a combiner) and keeps, per word, its longest line. Step 2
sends every word to one reducer (key None), which keeps the 20 most frequent.
``increment_counter`` counts the lines and the distinct words.
"""

import heapq

from sshmr import MapReduce, MRStep

TOP = 20


class TopWords(MapReduce):
    def steps(self):
        return [
            MRStep(mapper=self.words, combiner=self.count_and_keep, reducer=self.count_and_keep),
            MRStep(mapper=self.to_one_key, reducer=self.top),
        ]

    def words(self, _, line):
        self.increment_counter("input", "lines")
        for word in line.split():
            word = word.strip(".,;:!?\"'()[]").lower()
            if word.isalpha():
                yield word, [1, line.strip()]

    def count_and_keep(self, word, values):
        total, longest = 0, ""
        for count, line in values:
            total += count
            if (len(line), line) > (len(longest), longest):
                longest = line
        yield word, [total, longest]

    def to_one_key(self, word, value):
        self.increment_counter("output", "distinct words")
        yield None, [value[0], word, value[1]]

    def top(self, _, values):
        for count, word, line in heapq.nlargest(TOP, values):
            yield word, {"count": count, "longest_line": line}
