"""Job classes for the benchmarks (this file is shipped to the hosts as the job code)."""

from sshmr import JobExecutor


class Noop(JobExecutor):
    """The trivial job: returns its payload. Measures sshmr's own per-job overhead."""

    def execute(self, payload):
        return payload


class Square(JobExecutor):
    """The JobExecutor twin of the notebook benchmark's ``lambda x: x * x + 7``."""

    def execute(self, payload):
        return payload * payload + 7


class Sleep(JobExecutor):
    """W2/W5: sleeps ``payload`` seconds, returns it."""

    def execute(self, payload):
        import time

        time.sleep(float(payload))
        return payload


class FileEcho(JobExecutor):
    """W3: the payload is a pushed input file; returns its bytes (returned by SFTP)."""

    def execute(self, payload):
        with open(payload, "rb") as f:
            return f.read()
