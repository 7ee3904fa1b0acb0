"""``LocalTransport``: the embedded default. Agents are subprocesses on this machine.

Same runtime, same protocol and same on-disk format as over SSH; only the pipe differs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

from ..remote.protocol import open_private, private_dir
from .base import AgentStream, Transport, copy_limited, read_limited

STDERR_LIMIT = 8192


class LocalAgent(AgentStream):
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._err = b""
        threading.Thread(target=self._drain, daemon=True, name="local-agent-stderr").start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self._err = (self._err + chunk)[-STDERR_LIMIT:]

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise OSError("agent stdin closed") from exc

    def recv(self) -> bytes:
        assert self.proc.stdout is not None
        return self.proc.stdout.read1(65536)

    def stderr(self) -> str:
        return self._err.decode("utf-8", "replace")

    def exit_status(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class LocalTransport(Transport):
    local = True

    def __init__(self, name: str = "local") -> None:
        self.name = name

    def connect(self) -> None:
        pass

    def home(self) -> str:
        return os.path.expanduser("~")

    def put_bytes(self, data: bytes, path: str) -> None:
        with os.fdopen(open_private(path), "wb") as f:
            f.write(data)

    def put_file(self, local_path: str, path: str) -> None:
        with open(local_path, "rb") as src, os.fdopen(open_private(path), "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)

    def get_bytes(self, path: str, limit: int | None = None) -> bytes:
        with open(path, "rb") as f:
            return read_limited(f, path, limit)

    def get_file(self, path: str, local_path: str, limit: int | None = None) -> None:
        if limit is None:
            shutil.copyfile(path, local_path)
            return
        with open(path, "rb") as src, open(local_path, "wb") as dst:
            copy_limited(src, dst, path, limit)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def makedirs(self, path: str, mode: int = 0o700) -> None:
        missing = []  # os.makedirs gives ``mode`` to the last directory only
        here = os.path.abspath(path)
        while not os.path.isdir(here):
            missing.append(here)
            here = os.path.dirname(here)
        for d in reversed(missing):
            try:
                os.mkdir(d, mode)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise

    def mkdir_private(self, path: str) -> None:
        private_dir(path)

    def rename(self, src: str, dst: str) -> None:
        if os.path.exists(dst):
            raise FileExistsError(dst)
        os.rename(src, dst)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def run(self, argv: list[str], timeout: float = 30.0) -> tuple[int, str, str]:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr

    def rmtree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def start_agent(self, argv: list[str]) -> AgentStream:
        return LocalAgent(argv)

    def close(self) -> None:
        pass
