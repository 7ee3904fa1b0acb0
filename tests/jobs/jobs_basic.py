"""Job classes used by the integration tests (shipped to the test hosts)."""

import os
import sys
import time

from sshmr import JobExecutor


class Echo(JobExecutor):
    """Returns its payload and where it ran."""

    def execute(self, payload):
        return {"payload": payload, "pid": os.getpid()}


class Square(JobExecutor):
    def execute(self, payload):
        return int(payload) ** 2


class RaiseOnOdd(JobExecutor):
    def execute(self, payload):
        n = int(payload)
        if n % 2:
            print("about to fail on", n)
            raise ValueError(f"odd input {n}")
        return n


class NotSerialisable(JobExecutor):
    def execute(self, payload):
        return {"when": object()}


class Blob(JobExecutor):
    """Returns ``payload`` bytes of binary data (bytes results are kept as raw files)."""

    def execute(self, payload):
        size = int(payload)
        return bytes(i % 251 for i in range(size))


class BigJson(JobExecutor):
    """A JSON result larger than the inline limit: collected over SFTP."""

    def execute(self, payload):
        return {"text": "x" * int(payload)}


class PayloadSize(JobExecutor):
    def execute(self, payload):
        return len(payload)


class FileWords(JobExecutor):
    """For --split files: the payload is the path of the pushed copy on the host."""

    def execute(self, payload):
        with open(payload) as f:
            return {"name": os.path.basename(payload), "words": len(f.read().split())}


class SetupCounter(JobExecutor):
    """setup() runs once per worker process: every job sees the same setup pid."""

    def setup(self):
        self.setup_pid = os.getpid()
        self.jobs = 0

    def execute(self, payload):
        self.jobs += 1
        return {"setup_pid": self.setup_pid, "pid": os.getpid(), "jobs": self.jobs}


class BrokenSetup(JobExecutor):
    def setup(self):
        raise RuntimeError("cannot reach the database")

    def execute(self, payload):
        return payload


class Sleep(JobExecutor):
    def execute(self, payload):
        time.sleep(float(payload))
        return float(payload)


class Stdout(JobExecutor):
    def execute(self, payload):
        print("hello from job", payload)
        print("warning", payload, file=sys.stderr)
        return payload


class Add(JobExecutor):
    def execute(self, payload):
        return sum(payload)


class Lines(JobExecutor):
    """For --split lines:N and bytes:SIZE: how many lines the payload holds."""

    def execute(self, payload):
        if isinstance(payload, list):
            return len(payload)
        return payload.count("\n")


class PrintSome(JobExecutor):
    """Prints its payload's ``out`` (if any) to stdout and ``err`` to stderr; then sleeps
    ``sleep`` seconds (a timeout kills it there)."""

    def execute(self, payload):
        if payload.get("out"):
            print(payload["out"])
        if payload.get("err"):
            print(payload["err"], file=sys.stderr)
        time.sleep(payload.get("sleep", 0))
        return payload.get("out")
