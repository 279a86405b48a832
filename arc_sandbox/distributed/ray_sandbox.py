"""RaySandbox: the Sandbox across the nodes of a Ray cluster, exactly one result per job when nodes die.

Design (Ray's guidance: tasks under ~10 ms are too fine to be Ray tasks): one long-lived actor per alive node
with CPUs, pinned to it by node id, owns a local Sandbox (``node.py``). The driver sends it chunks of jobs and
keeps at most ``max_inflight`` chunks' worth of jobs in flight per actor, enough that its workers never wait for
the driver; results come back in small batches through one streaming generator per actor.

Ray's defaults are at-most-once: a task on a dead actor is not retried and its results vanish. So the driver
keeps every job it sent until its result arrives. When an actor or its node dies, the jobs it held without a
result go to live actors again; the first result for a job wins and later ones are dropped; a job lost
``max_attempts`` times gets ``Status.INFRA_ERROR``. Dead actors are replaced while their node is alive, and
nodes that join are used. The same rule makes the end of a run fast: once every job is out, jobs still queued
on a busy node are copied to idle ones, and whichever result comes first is the one passed on.
"""
from __future__ import annotations

import collections
import logging
import math
import pickle
import socket
import time
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from ..executor import Job, Limits, ProgramResult, SandboxError, SandboxStats, Status   # the executor's public surface
from .node import Batch, NodeInfo, NodeRunner

_log = logging.getLogger("arc_sandbox")
RAY_MISSING = "RaySandbox needs Ray, which is not installed: pip install 'arc-sandbox[ray]'"
_NODE_POLL_S = 2.0          # how often the driver looks for joined and departed nodes
_WAIT_S = 0.05              # longest wait for results before the driver looks around again
_NODE_FAILURES = 3          # actors in a row that failed to start on one node before it is left alone
_NODE_COOLDOWN_S = 60.0     # ... for this long
_SHUTDOWN_WAIT_S = 5.0
_START_TIMEOUT_S = 120.0    # an actor that is not ready by then (its node is hung, or starved) is given up
_ACTOR_THREADS = 8          # results stream + submit/cancel/ready calls arriving while it streams


@dataclass
class RaySandboxStats(SandboxStats):
    """The Sandbox's stats summed over every node's Sandbox (``programs``: results handed to the caller), and
    what the cluster did."""

    nodes: int = 0                 # nodes with a live actor now
    workers: int = 0               # their workers
    actors_started: int = 0
    actors_lost: int = 0           # actors (or their nodes) that died or stalled while in use
    jobs_resubmitted: int = 0      # jobs sent again after losing their actor
    jobs_copied: int = 0           # jobs copied from a busy node's queue to an idle one at the end of a run
    duplicates_dropped: int = 0    # results for jobs that already had one (of those copies), never passed on
    infra_errors: int = 0          # jobs that got Status.INFRA_ERROR


@dataclass
class _Actor:
    """The driver's view of one node's actor."""

    node_id: str
    handle: Any
    started: float
    ready_ref: Any = None                     # until the actor answered ``ready``
    stream: Any = None                        # its results generator, once ready
    info: NodeInfo | None = None
    pending: dict[int, None] = field(default_factory=dict)   # jobs of the current run sent here without a
                                                             # result, in the order sent (an ordered set)
    last_progress: float = 0.0
    stats: SandboxStats = field(default_factory=SandboxStats)

    @property
    def workers(self) -> int:
        return self.info.workers if self.info else 0


@dataclass
class _Sent:
    item: Any
    attempts: int
    actors: list[_Actor]   # where it is: one actor, two for a copy at the end of a run


class _Run:
    """One run/imap call: the source of jobs, what was sent, what must go again, what is decided."""

    def __init__(self, run_id: int, jobs: Iterable[Any]) -> None:
        self.id = run_id
        self.total = len(jobs) if isinstance(jobs, Sequence) else None
        self.source = enumerate(jobs)
        self.taken = 0
        self.exhausted = False
        self.sent: dict[int, _Sent] = {}
        self.retry: collections.deque[tuple[int, Any, int]] = collections.deque()   # (index, item, attempts)
        self.decided: collections.deque[ProgramResult] = collections.deque()
        self.given_up: str | None = None   # why every job left gets Status.INFRA_ERROR

    @property
    def finished(self) -> bool:
        return self.exhausted and not self.sent and not self.retry and not self.decided

    @property
    def remaining(self) -> int | None:
        return None if self.total is None else self.total - self.taken + len(self.retry)

    def take(self, n: int) -> list[tuple[int, Any, int]]:
        out = []
        while self.retry and len(out) < n:
            out.append(self.retry.popleft())
        while not self.exhausted and len(out) < n:
            try:
                index, item = next(self.source)
            except StopIteration:
                self.exhausted = True
                break
            self.taken += 1
            out.append((index, item, 0))
        return out


class RaySandbox:
    """Runs programs like a :class:`~arc_sandbox.Sandbox`, on every node of a Ray cluster.

    >>> with RaySandbox("auto", limits=Limits(timeout_s=1.0)) as sb:
    ...     results = sb.run(jobs)

    ``address``: ``"auto"`` or ``"host:port"`` of a running cluster; None: Ray's default (``RAY_ADDRESS``, a
    cluster started on this machine, else a new local instance). If Ray is already initialised in this
    process, that connection is used. ``workers_per_node``: each node's Sandbox workers (default: the node's
    CPUs in Ray). ``chunk_size``: jobs per message to an actor (default ``max(32, 4 x its workers)``: a Ray call
    costs about a millisecond);
    ``max_inflight``: chunks' worth of jobs each actor holds at most. ``max_attempts``: losses of its actor a
    job survives before it gets ``Status.INFRA_ERROR``. ``node_wait_s``: how long to wait for a node when none
    is usable (at start, or after all were lost) before failing. ``stall_timeout_s``: an actor holding jobs
    that sends no result for this long is treated as lost (default ``max(60, 10 x (timeout + grace))``).
    Other keyword arguments (``isolation``, ``dedupe``, ``memory_floor_mb``) go to every node's Sandbox.
    """

    def __init__(self, address: str | None = None, workers_per_node: int | None = None,
                 limits: Limits | None = None, *, chunk_size: int | None = None, max_inflight: int = 4,
                 max_attempts: int = 3, progress: bool = False, node_wait_s: float = 30.0,
                 stall_timeout_s: float | None = None, **sandbox_options: Any) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ImportError(RAY_MISSING) from exc
        self._ray = ray
        _positive_int("workers_per_node", workers_per_node, optional=True)
        _positive_int("chunk_size", chunk_size, optional=True)
        _positive_int("max_inflight", max_inflight)
        _positive_int("max_attempts", max_attempts)
        self.limits = limits or Limits()
        self.workers_per_node, self.chunk_size, self.max_inflight = workers_per_node, chunk_size, max_inflight
        self.max_attempts, self.progress, self.node_wait_s = max_attempts, progress, node_wait_s
        self.stall_timeout_s = stall_timeout_s or max(60.0, 10 * (self.limits.timeout_s + self.limits.kill_grace_s))
        self.sandbox_options = sandbox_options
        self._actors: dict[str, _Actor] = {}
        self._submits: dict[Any, _Actor] = {}      # submit call -> its actor (a failed call loses the actor)
        self._node_failures: collections.Counter = collections.Counter()
        self._cooldown: dict[str, float] = {}      # node -> when it may be tried again
        self._last_poll = 0.0
        self._last_loss = "no alive Ray node with CPUs"
        self._own = RaySandboxStats()
        self._retired = SandboxStats()           # summed stats of actors that are gone
        self._run: _Run | None = None
        self._runs = 0
        self._closed = False
        self._owns_connection = _connect(ray, address)
        self._runner = ray.remote(NodeRunner)
        try:
            self._await_first_nodes()
        except BaseException:
            self.close()
            raise

    # -- public API -----------------------------------------------------------------
    def run(self, jobs: Iterable[Job | tuple], *, progress: bool | None = None) -> list[ProgramResult]:
        """Run every job; one result per job, in job order."""
        results = {r.index: r for r in self.imap(jobs, progress=progress)}
        return [results[i] for i in range(len(results))]

    def imap(self, jobs: Iterable[Job | tuple], *, progress: bool | None = None) -> Iterator[ProgramResult]:
        """Yield one result per job as it finishes (``result.index`` is the job's position).

        Jobs are pulled lazily; at most ``max_inflight`` chunks per node are held in memory.
        """
        if self._closed:
            raise SandboxError("this RaySandbox is closed")
        if self._run is not None:
            raise SandboxError("imap/run is already running on this RaySandbox (it is not re-entrant)")
        self._runs += 1
        run = self._run = _Run(self._runs, jobs)
        show = self.progress if progress is None else progress
        bar = tqdm(total=run.total, disable=not show, unit="prog", smoothing=0.05)
        no_actor_since: float | None = None
        try:
            while True:
                self._look_around()
                self._dispatch(run)
                while run.decided:
                    bar.update()
                    self._own.programs += 1
                    yield run.decided.popleft()
                if run.finished:
                    return
                if self._actors or run.given_up:   # ready or starting (a start has its own deadline)
                    no_actor_since = None
                else:   # nothing can run: wait for a node, but not forever
                    no_actor_since = no_actor_since or time.monotonic()
                    if time.monotonic() - no_actor_since > self.node_wait_s:
                        self._give_up(run, f"{self._last_loss}; no usable node for {self.node_wait_s:.0f} s")
                if not run.given_up:
                    self._collect(run)
        finally:
            bar.close()
            self._end_run(run)

    def close(self) -> None:
        """Stop every node's Sandbox and actor; disconnect from Ray if this object connected. Safe twice."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        refs = []
        for actor in self._actors.values():
            try:
                refs.append(actor.handle.shutdown.remote())
            except Exception:
                pass
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=_SHUTDOWN_WAIT_S)
        for actor in list(self._actors.values()):
            self._kill(actor)
        self._actors.clear()
        self._submits.clear()
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> "RaySandbox":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def workers(self) -> int:
        """Workers on the nodes in use now."""
        return sum(a.workers for a in self._actors.values() if a.stream is not None)

    @property
    def nodes(self) -> dict[str, NodeInfo]:
        """The nodes in use now: node id -> host, actor pid, workers, and the isolation layers applied there."""
        return {a.node_id: a.info for a in self._actors.values() if a.stream is not None}

    @property
    def stats(self) -> RaySandboxStats:
        stats = RaySandboxStats(**{f.name: getattr(self._own, f.name) for f in fields(RaySandboxStats)})
        stats.workers_retired = collections.Counter(self._retired.workers_retired)
        for part in [self._retired] + [a.stats for a in self._actors.values()]:
            stats.workers_started += part.workers_started
            stats.template_restarts += part.template_restarts
            stats.guard_kills += part.guard_kills
        for actor in self._actors.values():
            stats.workers_retired.update(actor.stats.workers_retired)
        stats.nodes, stats.workers = len(self.nodes), self.workers
        return stats

    # -- nodes and actors -------------------------------------------------------------
    def _await_first_nodes(self) -> None:
        """Start an actor on every usable node and wait until each answered; fail if no node is usable for
        ``node_wait_s`` (a start itself may take up to two minutes)."""
        no_actor_since = time.monotonic()
        while True:
            self._look_around()
            starting = [a for a in self._actors.values() if a.ready_ref is not None]
            if self._actors and not starting:
                return
            if self._actors:
                no_actor_since = time.monotonic()
            elif time.monotonic() - no_actor_since > self.node_wait_s:
                raise SandboxError(f"RaySandbox: no node could run programs within {self.node_wait_s:.0f} s: "
                                   f"{self._last_loss} (cluster: {_describe_nodes(self._ray)})")
            if starting:
                ready, _ = self._ray.wait([a.ready_ref for a in starting], num_returns=1, timeout=0.5)
                for actor in starting:
                    if actor.ready_ref in ready:
                        self._on_ready(actor)
            else:
                time.sleep(0.2)

    def _look_around(self) -> None:
        """Every few seconds: drop actors of departed nodes, start actors on new ones, catch stalls."""
        now = time.monotonic()
        if now - self._last_poll < (_NODE_POLL_S if self._actors else _WAIT_S * 5):
            return
        self._last_poll = now
        try:
            nodes = self._ray.nodes()
        except Exception as exc:   # the head is unreachable: actors that die say so through their streams
            self._last_loss = f"cannot list the cluster's nodes ({_reason(exc)})"
            _log.warning("RaySandbox: %s", self._last_loss)
            return
        alive = {n["NodeID"]: n for n in nodes if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1}
        for node_id, actor in list(self._actors.items()):
            if node_id not in alive:
                self._lose(actor, f"node {node_id[:12]} left the cluster")
            elif actor.ready_ref is not None and now - actor.started > _START_TIMEOUT_S:
                self._lose(actor, f"the actor on node {node_id[:12]} did not start within {_START_TIMEOUT_S:.0f} s")
            elif actor.pending and now - actor.last_progress > self.stall_timeout_s:
                self._lose(actor, f"node {node_id[:12]} sent no result for {self.stall_timeout_s:.0f} s")
        for node_id, node in alive.items():
            if node_id not in self._actors and self._cooldown.get(node_id, 0.0) <= now:
                self._start_actor(node_id, node)

    def _start_actor(self, node_id: str, node: dict) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        workers = self.workers_per_node or max(1, int(node["Resources"]["CPU"]))
        # No CPU is reserved in Ray: the Sandbox's workers are not Ray tasks, and a reservation would keep the
        # trainer's own actors off the node. Size workers_per_node to leave them cores (docs/distributed.md).
        handle = self._runner.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False), num_cpus=0,
            max_concurrency=_ACTOR_THREADS, max_restarts=0,
        ).remote(workers, self.limits, self.sandbox_options)
        actor = _Actor(node_id, handle, time.monotonic())
        actor.ready_ref = handle.ready.remote()
        self._actors[node_id] = actor
        self._own.actors_started += 1

    def _on_ready(self, actor: _Actor) -> None:
        try:
            actor.info = self._ray.get(actor.ready_ref)
        except Exception as exc:
            self._lose(actor, f"the actor on node {actor.node_id[:12]} failed to start: {_reason(exc)}")
            return
        actor.ready_ref = None
        actor.last_progress = time.monotonic()
        self._node_failures[actor.node_id] = 0
        actor.stream = actor.handle.results.options(num_returns="streaming").remote()
        _log.info("RaySandbox: node %s (%s) ready with %d workers", actor.node_id[:12], actor.info.hostname,
                  actor.workers)

    def _lose(self, actor: _Actor, reason: str) -> None:
        """The actor is gone or useless: its jobs without a result go again (or fail after max_attempts)."""
        if self._actors.get(actor.node_id) is not actor:
            return
        del self._actors[actor.node_id]
        self._submits = {ref: a for ref, a in self._submits.items() if a is not actor}
        self._last_loss = reason
        if actor.last_progress <= actor.started:   # it never got ready: count against its node
            self._node_failures[actor.node_id] += 1
            if self._node_failures[actor.node_id] >= _NODE_FAILURES:
                self._cooldown[actor.node_id] = time.monotonic() + _NODE_COOLDOWN_S
                self._node_failures[actor.node_id] = 0
        if actor.stream is not None:
            self._own.actors_lost += 1
        self._retire_stats(actor.stats)
        run = self._run
        lost = list(actor.pending)
        actor.pending.clear()
        _log.warning("RaySandbox: %s; %d jobs without a result go to other nodes", reason, len(lost))
        for index in lost:
            sent = run.sent.get(index) if run else None
            if sent is None:
                continue
            sent.actors.remove(actor)
            if sent.actors:   # a copy is still out on another node
                continue
            del run.sent[index]
            attempts = sent.attempts + 1
            if attempts >= self.max_attempts:
                run.decided.append(self._infra_result(index, sent.item, f"{reason} (attempt {attempts} of "
                                                                        f"{self.max_attempts})"))
            else:
                run.retry.append((index, sent.item, attempts))
                self._own.jobs_resubmitted += 1
        self._kill(actor)

    def _kill(self, actor: _Actor) -> None:
        try:
            self._ray.kill(actor.handle, no_restart=True)
        except Exception:
            pass   # already dead

    def _retire_stats(self, stats: SandboxStats) -> None:
        self._retired.workers_started += stats.workers_started
        self._retired.template_restarts += stats.template_restarts
        self._retired.guard_kills += stats.guard_kills
        self._retired.workers_retired.update(stats.workers_retired)

    # -- jobs -------------------------------------------------------------------------
    def _dispatch(self, run: _Run) -> None:
        """Send chunks to the least loaded actors (per worker) until each holds its share."""
        if run.given_up:   # a few at a time: the caller may be streaming a generator of millions
            for index, item, _ in run.take(256):
                run.decided.append(self._infra_result(index, item, run.given_up))
            return
        ready = [a for a in self._actors.values() if a.stream is not None]
        while ready:
            chunk = {id(a): self.chunk_size or max(32, 4 * a.workers) for a in ready}
            room = [a for a in ready if len(a.pending) + chunk[id(a)] <= self.max_inflight * chunk[id(a)]]
            if not room:
                return
            actor = min(room, key=lambda a: len(a.pending) / a.workers)
            size = chunk[id(actor)]
            if run.remaining is not None:   # a short run is spread over every node, not given to the first
                size = min(size, max(1, math.ceil(run.remaining / len(ready))))
            items = run.take(size)
            if not items:
                self._copy_tail(run, ready)
                return
            self._send(run, actor, items)

    def _copy_tail(self, run: _Run, ready: list[_Actor]) -> None:
        """Every job of the run is out: copy jobs still queued on busy nodes to nodes with free workers. The
        first result wins and the other is dropped, so the end of a run does not wait for one node's queue."""
        for idle in sorted(ready, key=lambda a: len(a.pending) / a.workers):
            free = 2 * idle.workers - len(idle.pending)
            donor = max(ready, key=lambda a: len(a.pending) / a.workers)
            queued = len(donor.pending) - 2 * donor.workers   # beyond what its workers hold: not started
            if free <= 0 or queued <= 0 or donor is idle:
                return
            last = [i for i in reversed(donor.pending) if len(run.sent[i].actors) == 1][:min(free, queued)]
            if not last:
                return
            self._own.jobs_copied += len(last)
            self._send(run, idle, [(i, run.sent[i].item, run.sent[i].attempts) for i in last], copies=True)

    def _send(self, run: _Run, actor: _Actor, items: list[tuple[int, Any, int]], copies: bool = False) -> None:
        try:
            payload = _pickle([(index, item) for index, item, _ in items])
        except Exception:   # something in the chunk cannot be pickled: find it, send the others
            items = self._unpicklable_out(run, items)
            if not items:
                return
            payload = _pickle([(index, item) for index, item, _ in items])
        ref = actor.handle.submit.remote(run.id, payload)
        if not actor.pending:
            actor.last_progress = time.monotonic()   # the stall clock runs only while the actor holds jobs
        for index, item, attempts in items:
            if copies:
                run.sent[index].actors.append(actor)
            else:
                run.sent[index] = _Sent(item, attempts, [actor])
            actor.pending[index] = None
        self._submits[ref] = actor

    def _unpicklable_out(self, run: _Run, items: list[tuple[int, Any, int]]) -> list[tuple[int, Any, int]]:
        good = []
        for index, item, attempts in items:
            try:
                _pickle(item)
                good.append((index, item, attempts))
            except Exception as exc:
                run.decided.append(_result(index, item, Status.INVALID_JOB, "InvalidJob",
                                           f"job {index}: cannot be sent to a Ray node: {_reason(exc)}"))
        return good

    def _collect(self, run: _Run) -> None:
        """Wait briefly for anything: result batches, actors starting, submit calls failing."""
        waitables = {}
        for actor in self._actors.values():
            waitables[actor.stream if actor.stream is not None else actor.ready_ref] = actor
        waitables.update(self._submits)
        if not waitables:
            time.sleep(_WAIT_S)
            return
        ready, _ = self._ray.wait(list(waitables), num_returns=1, timeout=_WAIT_S)
        for ref in ready:
            actor = waitables[ref]
            if self._actors.get(actor.node_id) is not actor:
                continue   # lost while handling an earlier one
            if ref is actor.ready_ref:
                self._on_ready(actor)
            elif ref is actor.stream:
                self._receive(run, actor)
            else:
                self._submitted(ref, actor)

    def _submitted(self, ref: Any, actor: _Actor) -> None:
        del self._submits[ref]
        try:
            self._ray.get(ref)
        except Exception as exc:
            self._lose(actor, f"sending jobs to node {actor.node_id[:12]} failed: {_reason(exc)}")

    def _receive(self, run: _Run, actor: _Actor) -> None:
        try:
            batch: Batch = pickle.loads(self._ray.get(next(actor.stream)))
        except StopIteration:
            self._lose(actor, f"the results stream of node {actor.node_id[:12]} ended")
            return
        except Exception as exc:
            self._lose(actor, f"node {actor.node_id[:12]} lost: {_reason(exc)}")
            return
        actor.stats = batch.stats
        actor.last_progress = time.monotonic()
        for run_id, result in batch.results:
            if run_id != run.id:
                continue   # a job of an abandoned run, still finishing
            actor.pending.pop(result.index, None)
            sent = run.sent.pop(result.index, None)
            if sent is None:   # this job already has its result
                self._own.duplicates_dropped += 1
                continue
            for holder in sent.actors:
                holder.pending.pop(result.index, None)
            run.decided.append(result)

    def _give_up(self, run: _Run, reason: str) -> None:
        """No node can run anything: every job left gets an infrastructure status (never a hang)."""
        _log.error("RaySandbox: %s; the remaining jobs get status %s", reason, Status.INFRA_ERROR)
        for index, sent in sorted(run.sent.items()):
            run.decided.append(self._infra_result(index, sent.item, reason))
        run.sent.clear()
        run.given_up = reason   # the jobs not yet sent follow in _dispatch

    def _end_run(self, run: _Run) -> None:
        """After the last result, or when the caller stopped early: nodes skip what is still queued."""
        self._run = None
        for actor in self._actors.values():
            if actor.stream is not None:   # queued jobs of the run: unfinished ones, or copies already answered
                actor.handle.cancel.remote(run.id)
            actor.pending.clear()

    def _infra_result(self, index: int, item: Any, reason: str) -> ProgramResult:
        self._own.infra_errors += 1
        return _result(index, item, Status.INFRA_ERROR, "InfraError", reason)


# -- helpers ---------------------------------------------------------------------------------
def _connect(ray: Any, address: str | None) -> bool:
    """Use this process's Ray connection, or make one; True when we made it (and so close it)."""
    if ray.is_initialized():
        return False
    if address not in (None, "auto", "local") and not address.startswith("ray://"):
        _check_reachable(address)
    ray.init(address=address)
    return True


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes; fail at once with a clear message instead."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"Ray address {address!r}: expected 'auto', 'host:port' or 'ray://host:port'")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConnectionError(f"no Ray cluster at {address} ({exc.strerror or exc}); start one with "
                              "`ray start --head` or pass its address") from None


def _pickle(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _describe_nodes(ray: Any) -> str:
    nodes = ray.nodes()
    alive = [n for n in nodes if n.get("Alive")]
    cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in alive)
    return f"{len(alive)} alive nodes of {len(nodes)}, {cpus:g} CPUs"


def _result(index: int, item: Any, status: Status, error_type: str, message: str) -> ProgramResult:
    inputs = item.inputs if isinstance(item, Job) else item[1] if isinstance(item, tuple) and len(item) > 1 else ()
    n = len(inputs) if hasattr(inputs, "__len__") else 0
    return ProgramResult(status=status, outputs=[None] * n, grid_statuses=[status] * n, error_type=error_type,
                         error_message=message, index=index, key=item.key if isinstance(item, Job) else None)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _positive_int(name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
