"""Job classes for the live-progress tests: slow jobs, some of which fail."""

import sys
import time

from sshmr import JobExecutor


class SlowMaybeFail(JobExecutor):
    """Payload ``"SECONDS"`` or ``"SECONDS fail"``: sleeps, then returns or raises."""

    def execute(self, payload):
        seconds, *rest = payload.split()
        time.sleep(float(seconds))
        if rest == ["fail"]:
            print("working on", payload)
            print("about to fail", file=sys.stderr)
            raise RuntimeError(f"job asked to fail after {seconds}s")
        return float(seconds)
