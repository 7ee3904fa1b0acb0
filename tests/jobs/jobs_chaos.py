"""The chaos run's job (shipped to the test hosts; stdlib only).

Payload: a dict (or its JSON text, one per input line on the CLI) with ``k`` (the job's
key), ``d`` (the side-effect directory), ``v`` (an int), and optionally ``sleep``
(seconds), ``fail`` (always raise), ``fail_first`` (raise on the first launch only) and
``pad`` (a result of that many KiB more, so it is downloaded over SFTP, not inline).

Every launch first appends one line ``number pid host-tag time`` to ``<d>/<k>.launches``,
the format of ``jobs_faults.py`` that ``tests/faults/checks.py`` counts. The result is a
pure function of the payload (``expected``), so the chaos checker can compare it.
"""

import fcntl
import json
import os
import time

from sshmr import JobExecutor


def expected(spec):
    """The one correct result of a job that succeeds."""
    result = {"k": spec["k"], "sq": spec["v"] * spec["v"]}
    if spec.get("pad"):
        result["pad"] = f"{spec['v']}." * (spec["pad"] * 1024 // (len(str(spec["v"])) + 1))
    return result


def record_launch(spec):
    path = os.path.join(spec["d"], spec["k"] + ".launches")
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        number = len(f.read().splitlines()) + 1
        tag = os.environ.get("SSHD_CLUSTER_TAG", "")
        f.write(f"{number} {os.getpid()} {tag} {time.time():.6f}\n")
        f.flush()
    return number


class Chaos(JobExecutor):
    """Sleeps, maybe raises, returns ``expected(payload)``."""

    def execute(self, payload):
        spec = json.loads(payload) if isinstance(payload, str) else payload
        n = record_launch(spec)
        print(f"job {spec['k']} launch {n}")
        if spec.get("sleep"):
            time.sleep(spec["sleep"])
        if spec.get("fail") or (spec.get("fail_first") and n == 1):
            raise ValueError(f"job {spec['k']} fails on purpose (launch {n})")
        return expected(spec)
