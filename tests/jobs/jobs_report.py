"""Job classes for the HTML report tests: hostile output, failures and slow jobs."""

import sys
import time

from sshmr import JobExecutor

SCRIPT = "<script>document.title='pwned';window.pwned=1</script>"
IMG = "<img src=x onerror=\"document.title='pwned-img';window.pwned=2\">"


class Hostile(JobExecutor):
    """Prints a <script> to stdout and stderr and raises with an <img onerror> message
    when its payload says so; returns the payload (which may itself be hostile)."""

    def execute(self, payload):
        print(SCRIPT)
        print(SCRIPT, file=sys.stderr)
        if "fail" in payload:
            raise ValueError(IMG)
        return payload


class Mixed(JobExecutor):
    """Payload ``N``: sleeps a little (N % 17 == 0: ten times longer, a straggler); every
    ninth job raises, every 25th fails on its first attempt only."""

    def setup(self):
        self.seen = set()

    def execute(self, payload):
        n = int(payload)
        time.sleep(0.3 if n % 17 == 0 else 0.03 + (n % 5) * 0.005)
        if n % 9 == 0:
            print("cannot parse record", n, file=sys.stderr)
            raise ValueError(f"record {n}: field 'amount' is empty")
        if n % 25 == 0 and n not in self.seen:
            self.seen.add(n)
            raise RuntimeError(f"record {n}: upstream busy, try again")
        return {"n": n}
