"""The job of the orphan stress test (shipped to the test hosts; stdlib only).

``Probe`` spends a random moment in ``setup()`` (so that some runs end while workers are
still setting up) and runs each job for ``sleep`` seconds (a payload dict, or its JSON text
as read from an input line on the CLI).
"""

import json
import os
import random
import time

from sshmr import JobExecutor


class Probe(JobExecutor):
    def setup(self):
        time.sleep(random.uniform(0.0, 0.3))

    def execute(self, payload):
        if isinstance(payload, str):
            payload = json.loads(payload)
        time.sleep(payload.get("sleep", 0.0))
        return {"i": payload["i"], "pid": os.getpid()}
