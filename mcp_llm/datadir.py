"""Who may use a data dir: exactly one server owns an in-process engine there; SQLite never on a network share.

With the remote backend several server processes of one host may share a data dir (SQLite in WAL mode,
job leases in the store); on a network filesystem SQLite's locking is unreliable, so we refuse to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCKFILE = "engine.lock"
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "glusterfs", "ceph", "lustre"}


class DataDirRefused(RuntimeError):
    """The server must not start on this data dir; the message says why and what to do."""


def filesystem_type(path: Path, mounts: str = "/proc/mounts") -> str | None:
    """The filesystem type of the mount holding `path` (Linux; None when unknown)."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    target, best, found = str(path.resolve()), -1, None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, found = len(point), fields[2]
    return found


def refuse_network_share(data_dir: Path, mounts: str = "/proc/mounts") -> None:
    """DataDirRefused when the data dir (its SQLite database) sits on a network filesystem."""
    fstype = filesystem_type(data_dir, mounts)
    if fstype in NETWORK_FILESYSTEMS:
        raise DataDirRefused(
            f"The data dir {data_dir} is on a network filesystem ({fstype}), where SQLite's locks do not hold "
            "across machines: give each server a local --data-dir (replicas on one host may share one)."
        )


@contextlib.contextmanager
def engine_owner(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's engine lock for the block; DataDirRefused naming the holder when another server has it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCKFILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "unknown"
            raise DataDirRefused(
                f"Another mcp-llm server (pid {holder}) runs an in-process engine on the data dir {data_dir}: "
                "stop it, or give this one its own --data-dir (or connect to it over HTTP instead)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock
