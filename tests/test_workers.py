"""corridor.workers: worker pools start inside a daemonic process (a Celery task) and die with it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest


def _pid() -> int:
    return os.getpid()


def _pool_in_a_daemon(queue, hold: bool, like_celery: bool = False) -> None:
    from corridor.workers import process_pool

    current = multiprocessing.current_process()
    if like_celery:  # a Celery prefork child carries billiard's key, unpicklable outside billiard
        import billiard.process

        current._config["authkey"] = billiard.process.AuthenticationString(bytes(current.authkey))
    flagged = bool(current._config.get("daemon"))
    try:
        pool = process_pool(2)
        pids = {pool.submit(_pid).result(timeout=60) for _ in range(4)}
        queue.put(("ok", flagged, sorted(pids)))
    except BaseException as exc:  # reported to the test, which fails naming it
        queue.put(("error", flagged, f"{type(exc).__name__}: {exc}"))
        return
    if hold:
        time.sleep(600)  # killed by the test
    pool.shutdown()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.parametrize("like_celery", [False, True], ids=["daemonic", "daemonic-with-billiards-authkey"])
def test_a_daemonic_process_like_a_celery_task_can_start_worker_processes(like_celery):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_pool_in_a_daemon, args=(queue, False, like_celery), daemon=True)
    proc.start()
    status, flagged, detail = queue.get(timeout=120)
    proc.join(60)
    assert flagged, "the test process was not daemonic: it proves nothing"
    assert status == "ok", detail
    assert proc.pid not in detail and detail


def test_worker_processes_die_with_their_parent_even_on_sigkill():
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_pool_in_a_daemon, args=(queue, True), daemon=True)
    proc.start()
    status, _, pids = queue.get(timeout=120)
    assert status == "ok", pids
    assert all(_alive(p) for p in pids)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    deadline = time.monotonic() + 30  # a bound on waiting, not a speed assertion
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), f"workers {pids} outlived their killed parent"
