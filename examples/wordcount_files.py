"""Count the words of whole files: one job per input file, run with ``--split files``.

The payload is the path of the worker's copy of the input file (an ``InputFile`` pushed
by sshmr), so the file is read on the worker, never shipped inside the payload.
"""

import os

from sshmr import JobExecutor


class WordCount(JobExecutor):
    def execute(self, payload):
        words = 0
        with open(payload, encoding="utf-8", errors="replace") as f:
            for line in f:
                words += len(line.split())
        return {"file": os.path.basename(payload), "words": words}
