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
