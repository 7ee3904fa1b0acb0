"""Small disks for fault tests: a tmpfs mounted on a directory, filled and freed at will.

``SmallDisk(path, size="16m")`` mounts a tmpfs of ``size`` on ``path`` (an existing
directory; its mode and owner are kept, and nothing is moved: what the directory held is
hidden until the umount). ``fill(leave_bytes=0)`` writes a ballast file until the kernel
says ENOSPC (then trims it to leave ``leave_bytes`` free), ``free()`` removes the ballast,
``umount()`` unmounts (lazily if something still holds a file there). It is a context
manager, and every mount is also unmounted at exit, so a failed test leaves none behind.
Mounting needs root (tests using it are marked ``root``).

``host_disk(cluster, i, size)`` is a ``SmallDisk`` on test host ``i``'s workdir.
"""

from __future__ import annotations

import atexit
import errno
import os
import subprocess
from pathlib import Path
from typing import Any

BALLAST = ".ballast"
CHUNK = 64 * 1024


class SmallDisk:
    """A tmpfs of ``size`` mounted on ``path``; see the module docstring."""

    def __init__(self, path: str | os.PathLike, size: str = "16m") -> None:
        self.path = Path(path).absolute()
        self.size = size
        self.mounted = False
        st = self.path.stat()  # the directory must exist
        options = f"size={size},mode={st.st_mode & 0o7777:o},uid={st.st_uid},gid={st.st_gid}"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)],
                       check=True, capture_output=True, text=True)
        self.mounted = True
        atexit.register(self.umount)

    @property
    def ballast(self) -> Path:
        return self.path / BALLAST

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes: int = 0) -> int:
        """Write the ballast until ENOSPC; leave ``leave_bytes`` free. Returns its size."""
        chunk = b"\0" * CHUNK
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
            while True:  # the last few pages, one at a time
                try:
                    os.write(fd, chunk[:4096])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
            size = os.fstat(fd).st_size
            if leave_bytes:
                size = max(0, size - leave_bytes)
                os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return size

    def free(self) -> None:
        """Remove the ballast."""
        try:
            self.ballast.unlink()
        except FileNotFoundError:
            pass

    def umount(self) -> None:
        """Unmount (lazily if busy); what the directory held before shows again."""
        atexit.unregister(self.umount)
        if not self.mounted:
            return
        done = subprocess.run(["umount", str(self.path)], capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], check=True, capture_output=True,
                           text=True)
        self.mounted = False

    def __enter__(self) -> SmallDisk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.umount()


def host_disk(cluster: Any, i: int, size: str = "16m") -> SmallDisk:
    """A ``SmallDisk`` on host ``i``'s workdir (``SshdHost.workdir``)."""
    return SmallDisk(cluster.hosts[i].workdir, size)
