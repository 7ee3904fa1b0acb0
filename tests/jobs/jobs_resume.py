"""Jobs for the resume tests: each launch appends to a side-effect file first."""

import os
import time

from sshmr import JobExecutor


class CountedSleep(JobExecutor):
    """Payload "DIR|NAME|SECONDS": appends a line to DIR/NAME.launches, sleeps, returns NAME."""

    def execute(self, payload):
        where, name, seconds = payload.split("|")
        with open(os.path.join(where, name + ".launches"), "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(float(seconds))
        return name
