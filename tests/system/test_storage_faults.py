"""Storage faults on a real, small tmpfs data dir (mounted by the test; skipped where mounting is not allowed):
the disk full, the file system read-only, the database locked by another process. Writes fail with clear
errors, nothing buffered is lost, `PRAGMA integrity_check` stays ok, and all is written once the cause is gone."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from mcp_llm.core.jobs import JobRunner
from mcp_llm.core.services import Services
from mcp_llm.core.store import Store
from mcp_llm.schemas import SamplingOptions
from tests.support.servers import start_fails

pytestmark = pytest.mark.anyio
ITEMS = 6


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("pragma integrity_check").fetchone()[0]


async def wait_for(runner_store: Store, job_id: str, status: str, timeout: float = 120) -> dict:
    with anyio.fail_after(timeout):
        while (job := runner_store.job(job_id))["status"] != status:
            await anyio.sleep(0.2)
    return job


async def test_a_full_disk_holds_results_in_memory_then_writes_them_all(services: Services, small_disk: Path) -> None:
    store = Store(small_disk / "mcp-llm.db")
    runner = JobRunner(store, services.recorder)
    rows = [{"prompt": f"Disk full {i}: " + "x " * 200} for i in range(ITEMS)]
    job_id = runner.submit(rows, SamplingOptions(max_tokens=24, ignore_eos=True), "test")
    filler = fill(small_disk)
    store.log_request({"client": "t", "kind": "probe", "status": "ok", "prompt": "p" * 300_000})  # needs new pages
    with anyio.fail_after(120):  # every item finishes, but nothing can be written: the job waits to be recorded
        while store.write_error is None:
            await anyio.sleep(0.2)
    assert "full" in store.write_error
    with pytest.raises(sqlite3.OperationalError, match="full"):
        runner.submit(rows, SamplingOptions(max_tokens=1), "test")  # a new job is refused, not half-written
    filler.unlink()
    job = await wait_for(store, job_id, "completed")
    assert (job["completed"], job["failed"]) == (ITEMS, 0) and store.write_error is None
    assert [r["status"] for r in store.items(job_id)] == ["done"] * ITEMS
    assert [r["kind"] for r in store.requests(limit=10)] == ["probe"]
    assert len(store.jobs()) == 1 and integrity(small_disk / "mcp-llm.db") == "ok"
    await runner.close()
    store.close()


def test_a_read_only_data_dir_stops_the_start_naming_the_database(small_disk: Path) -> None:
    Store(small_disk / "mcp-llm.db").close()
    before = (small_disk / "mcp-llm.db").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        stderr = start_fails(small_disk)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert "mcp-llm:" in stderr and "read-only" in stderr.lower().replace("readonly", "read-only"), stderr[-1500:]
    assert "Traceback" not in stderr, stderr[-1500:]
    assert (small_disk / "mcp-llm.db").read_bytes() == before


async def test_a_lock_held_by_another_process_delays_writes_without_losing_them(
    services: Services, tmp_path: Path
) -> None:
    store = Store(tmp_path / "mcp-llm.db")
    store.db.conn.execute("pragma busy_timeout = 200")
    runner = JobRunner(store, services.recorder)
    job_id = runner.submit([{"prompt": f"Locked {i}"} for i in range(ITEMS)], SamplingOptions(max_tokens=8), "t")
    locker = subprocess.Popen(
        [
            "python3",
            "-c",
            "import sqlite3,sys,time; db=sqlite3.connect(sys.argv[1], isolation_level=None); "
            "db.execute('begin exclusive'); print('locked', flush=True); time.sleep(6)",
            str(tmp_path / "mcp-llm.db"),
        ],
        stdout=subprocess.PIPE,
    )
    assert locker.stdout.readline().strip() == b"locked"
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        runner.submit([{"prompt": "x"}], SamplingOptions(max_tokens=1), "t")
    assert locker.poll() is None, "the lock must still be held: the job's status write waits for it"
    locker.wait(timeout=30)
    job = await wait_for(store, job_id, "completed")
    assert job["completed"] == ITEMS and len(store.jobs()) == 1 and integrity(tmp_path / "mcp-llm.db") == "ok"
    await runner.close()
    store.close()
