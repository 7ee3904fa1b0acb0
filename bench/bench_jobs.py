"""Job classes for the benchmarks (this file is shipped to the hosts as the job code)."""

from sshmr import JobExecutor


class Noop(JobExecutor):
    """The trivial job: returns its payload. Measures sshmr's own per-job overhead."""

    def execute(self, payload):
        return payload
