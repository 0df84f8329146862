"""Worker processes for the CPU-bound steps (parsing ahead of the loader, rendering scorecards).

One factory, ``process_pool``, so that every pool of the warehouse starts the same way:

- **spawn**, never fork: an Airflow task process has threads (its supervisor's
  heartbeat, log forwarding), and a forked copy of a threaded process can hang.
- **Children of a Celery task are allowed.** Under the Celery executor a task
  runs in a fork of a Celery pool process, which multiprocessing flags as
  *daemonic*; ``Process.start()`` then refuses with "daemonic processes are not
  allowed to have children" (publication failed so on the Celery stack, and
  the ingest quietly parsed on one core). The flag exists so that a daemonic
  process cannot leave orphans when it is killed; our workers cannot outlive
  their parent: each sets PR_SET_PDEATHSIG (Linux) before it takes work, and
  the pool is shut down when its step ends. So the flag is cleared in the
  task process (a process that runs one task and exits) before the pool starts.
  Its authentication key, billiard's (Celery's multiprocessing fork) there,
  becomes the standard library's, which spawning can pass on.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


def allow_children() -> bool:
    """Let this process start worker processes even when it was started as a daemonic one.

    Under Celery the process also carries billiard's authentication key, which
    refuses to be pickled outside billiard's own spawning (and a spawned child
    inherits the key by pickling): it is replaced by the standard library's
    kind, same bytes. Returns True when the daemon flag was set (and is now cleared).
    """
    current = multiprocessing.current_process()
    authkey = current._config.get("authkey")
    if authkey is not None and type(authkey) is not multiprocessing.process.AuthenticationString:
        current._config["authkey"] = multiprocessing.process.AuthenticationString(bytes(authkey))
    if not current._config.get("daemon"):
        return False
    current._config["daemon"] = False
    log.info("this process was started as a daemonic process (a Celery pool's fork): "
             "allowing it worker processes, each bound to it by PR_SET_PDEATHSIG")
    return True


def die_with_parent() -> None:
    """In a worker: end when the parent ends, even on SIGKILL (Linux: PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call above
        os._exit(1)


def _initialise(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    die_with_parent()
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, *, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that die with this one; usable inside a Celery task."""
    allow_children()
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_initialise, initargs=(initializer, initargs))
