"""Make cosmos's WATCHER execution mode run under a serial executor.

In ``ExecutionMode.WATCHER`` one producer task runs a single ``dbt build`` of
the whole project (dbt's own threads, one start-up) and one light consumer
task per dbt node reports that node's outcome from the producer's XCom.
Cosmos lets the consumers start alongside the producer (trigger rule
``always``), which assumes a parallel executor: under ``dag.test()`` -- our
local runner and tests -- tasks run one at a time, a consumer that starts
first waits forever for a producer that never gets to run.

Here every consumer waits for the producer to finish (``all_done``: a
consumer still reports its node's failure, or falls back to running it, when
the producer failed). Each consumer then finds its outcome at the first poke,
about 0.2 s a task. On a parallel executor the only cost is that per-node
states appear at the end of the build rather than during it.
"""

from __future__ import annotations

from cosmos.constants import PRODUCER_WATCHER_TASK_ID


def consumers_after_producer(dag) -> None:
    producer = next(t for t in dag.tasks if t.task_id.endswith(PRODUCER_WATCHER_TASK_ID))
    for task in dag.tasks:
        if task is producer:
            continue
        if not task.upstream_task_ids:
            producer >> task
        if task.trigger_rule == "always":  # cosmos's rule for the nodes right after the producer
            task.trigger_rule = "all_done"
