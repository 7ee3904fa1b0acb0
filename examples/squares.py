"""Square each number: the example job of the README. One job per input line."""

from sshmr import JobExecutor


class Square(JobExecutor):
    def execute(self, payload):
        n = int(payload)
        return {"n": n, "square": n * n}
