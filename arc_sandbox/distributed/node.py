"""What runs on each node of a RaySandbox: one actor owning a local Sandbox.

The driver (``ray_sandbox.py``) queues jobs with ``submit`` and reads results from ``results``, a Ray streaming
generator that stays open for the actor's life. A pump thread feeds queued jobs into one ``Sandbox.imap`` call
for as long as more keep coming, so chunks sent one after another share the workers with no barrier between
them (a chunk ending on a slow program does not leave the other workers idle).

The Sandbox starts its own template process, and its workers fork from that, never from this Ray worker.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import pickle
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

from ..executor import Limits, ProgramResult, Sandbox, SandboxStats   # the executor's public surface

# The pump's imap call ends after this long without a new job. While it waits, programs already running are
# not collected, so this is short; the driver keeps enough jobs queued that it rarely happens mid-run.
_IDLE_S = 0.02
# Results are gathered for up to this long into one batch: each batch costs Ray about a millisecond of CPU on
# both sides, so batches of a handful of results would cost more than the programs (benchmarks/ray_scale.py).
_BATCH_WAIT_S = 0.02
_BATCH_MAX = 256
_STOP = object()


@dataclass
class Batch:
    """Results streamed to the driver: ``(run, result)`` pairs, ``result.index`` being the job's place in its
    run, and the node Sandbox's stats at the time."""

    results: list[tuple[int, ProgramResult]]
    stats: SandboxStats


@dataclass(frozen=True)
class NodeInfo:
    workers: int
    hostname: str
    actor_pid: int   # the Ray worker process holding the actor (its Sandbox template is a child of it)
    layers: list   # hardening.LayerStatus of the node's workers


class NodeRunner:
    """The actor body (the driver wraps it with ``ray.remote``; this module never imports Ray)."""

    def __init__(self, workers: int, limits: Limits, sandbox_options: dict[str, Any]) -> None:
        self.sandbox = Sandbox(workers=workers, limits=limits, **sandbox_options)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()      # (run, index, job) or _STOP
        self._results: queue.SimpleQueue = queue.SimpleQueue()   # (run, result), or an error message
        self._cancelled: set[int] = set()
        self._stopping = False
        self._pump = threading.Thread(target=self._run_pump, name="arc-sandbox-pump", daemon=True)
        self._pump.start()

    def ready(self) -> NodeInfo:
        return NodeInfo(self.sandbox.workers, socket.gethostname(), os.getpid(), list(self.sandbox.layers))

    def submit(self, run: int, payload: bytes) -> int:
        """Queue a chunk: ``payload`` pickles ``[(index, job), ...]``. Chunks and batches travel as one pickle
        each: Ray would otherwise handle every small numpy grid in them as a buffer of its own."""
        items = pickle.loads(payload)
        for index, job in items:
            self._jobs.put((run, index, job))
        return len(items)

    def cancel(self, run: int) -> None:
        """The driver gave up on ``run`` (its caller stopped iterating): its queued jobs are skipped."""
        self._cancelled.add(run)

    def results(self) -> Iterator[bytes]:
        """Streams pickled :class:`Batch` es until shutdown; raises if the node's Sandbox broke."""
        while True:
            first = self._results.get()
            if first is _STOP:
                return
            if isinstance(first, str):
                raise RuntimeError(first)
            # Sleep through the batch window rather than wake for every result: this thread and the pump
            # share the GIL, and the pump should spend it on the Sandbox.
            time.sleep(_BATCH_WAIT_S)
            batch = [first]
            while len(batch) < _BATCH_MAX:
                try:
                    item = self._results.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP or isinstance(item, str):
                    self._results.put(item)   # handled at the top of the next round
                    break
                batch.append(item)
            yield pickle.dumps(Batch(batch, self._stats()), protocol=pickle.HIGHEST_PROTOCOL)

    def shutdown(self) -> None:
        self._stopping = True
        self._jobs.put(_STOP)
        self._pump.join(timeout=10)
        self.sandbox.close()
        self._results.put(_STOP)

    # -- the pump thread ------------------------------------------------------------------
    def _run_pump(self) -> None:
        try:
            while not self._stopping:
                first = self._jobs.get()
                if first is not _STOP:
                    self._serve(first)
        except BaseException as exc:   # the node's Sandbox is broken: the driver replaces this actor
            self._results.put(f"the Sandbox on {socket.gethostname()} failed: {type(exc).__name__}: {exc}")

    def _serve(self, first: tuple[int, int, Any]) -> None:
        """One imap call over the jobs queued now and those that keep arriving."""
        tickets: dict[int, tuple[int, int]] = {}   # position in this imap call -> (run, index)
        positions = itertools.count()

        def feed() -> Iterator[Any]:
            item = first
            while True:
                run, index, job = item
                if run not in self._cancelled:
                    tickets[next(positions)] = (run, index)
                    yield job
                try:
                    item = self._jobs.get(timeout=_IDLE_S)
                except queue.Empty:
                    return
                if item is _STOP:
                    self._stopping = True
                    return

        for result in self.sandbox.imap(feed()):
            run, index = tickets.pop(result.index)
            result.index = index
            self._results.put((run, result))

    def _stats(self) -> SandboxStats:
        for _ in range(3):   # the pump thread may be adding a retirement reason right now
            try:
                stats = self.sandbox.stats
                return dataclasses.replace(stats, workers_retired=collections.Counter(stats.workers_retired))
            except RuntimeError:
                continue
        return SandboxStats(programs=self.sandbox.stats.programs)
