"""The Sandbox: a pool of limited worker processes that never loses a result.

Jobs go to persistent workers forked from a template process (``template.py``); the parent
keeps every deadline itself, kills a late worker's whole process group, and turns whatever
happened (a reply, a signal, an exit) into exactly one ``ProgramResult`` per job.
Single-threaded: ``run``/``imap`` drive the pool from the calling thread.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import psutil
from multiprocess.connection import wait
from tqdm.auto import tqdm

from .alloc_trace import sites_from_wire
from .courier import Courier
from .extract import extract_code
from .grids import GridError, as_grid
from .hardening import (TEMPLATE_ENV, THREAD_ENV, Isolation, IsolationError, LayerStatus, check_required, kill_group,
                        missing, remove_workdirs, summary)
from .limits import Limits
from .results import Job, ProgramResult, Status, as_job
from .wire import EXIT_REPLY_LOST, EXIT_REQUEST_LOST, Reply, Request, WireError

_log = logging.getLogger("arc_sandbox")
_START_TIMEOUT_S = 60.0
_GUARD_PERIOD_S = 0.1
_EXIT_STATUS_WAIT_S = 5.0
_SEND_WAIT_S = 5.0     # a worker takes a request at once (a queued one fits in its socket's buffer)
_MAX_QUEUED_BYTES = 1 << 16   # larger requests are not queued behind a running program
_MAX_START_FAILURES = 5
_DEDUPE_MEMORY = 4096   # finished results kept per run/imap call to serve duplicates
# Outcomes that depend on the moment, not on the program (host load, host memory, a lost
# worker, a forged reply): never copied to duplicates, which run themselves instead.
_CIRCUMSTANTIAL = frozenset({"Timeout", "SIGXCPU", "MemoryGuard", "Lost", "Killed", "SIGKILL", "ForgedReply"})


class SandboxError(RuntimeError):
    """The sandbox itself cannot work (its template process cannot start, for example)."""


@dataclass
class SandboxStats:
    """Pool health over the sandbox's life."""

    programs: int = 0
    workers_started: int = 0
    workers_retired: collections.Counter = field(default_factory=collections.Counter)  # reason -> count
    template_restarts: int = 0
    guard_kills: int = 0


@dataclass
class _Running:
    index: int
    job: Job
    code: str
    started: float
    deadline: float
    requeued: bool = False
    _request: bytes | None = None

    def request(self) -> bytes:
        """The request's bytes (encoded once)."""
        if self._request is None:
            job = self.job
            self._request = Request(self.code, list(job.inputs), job.entry, job.trace_memory).to_bytes()
        return self._request

    def identity(self) -> bytes:
        """Same code, entry and inputs give the same result (programs are seeded): run once."""
        h = hashlib.blake2b(self.code.encode(), digest_size=16)
        h.update(repr((self.job.entry, self.job.trace_memory, [g.shape for g in self.job.inputs])).encode())
        for grid in self.job.inputs:
            h.update(grid.tobytes())
        return h.digest()


@dataclass
class _Worker:
    tag: int
    courier: Courier                   # its sockets; one job at a time (see courier.py)
    rss_kb: int = 0                    # resident size between programs: the next program's baseline
    cpu_s: float = 0.0                 # CPU time used before the current program
    running: _Running | None = None
    queued: _Running | None = None     # its request waits in the worker's socket behind ``running``
    kill_reason: tuple[Status, str, str] | None = None   # (status, error_type, message) when the parent killed it
    takes_queued: bool = True          # False once a queued request could not be sent to it
    dead: bool = False
    died_at: float = 0.0

    @property
    def pid(self) -> int:
        return self.courier.pid   # 0 until its hello arrives


class Sandbox:
    """Runs programs on grids in isolated, limited worker processes.

    >>> with Sandbox(workers=2, limits=Limits(timeout_s=1.0, memory_mb=512)) as sb:
    ...     results = sb.run([("def transform(g): return g.T", [[[1, 2]]])])

    ``workers``: worker processes (default: one per available core). ``progress``: a tqdm bar.
    ``memory_floor_mb``: host memory guard (default min(1 GB, 5 % of RAM)). ``isolation``: the
    hardening layers (``hardening.Isolation``). ``dedupe``: jobs with the same code, entry and
    inputs in one ``run``/``imap`` call run once (programs are seeded, so they agree).
    """

    def __init__(self, workers: int | None = None, limits: Limits | None = None, *,
                 progress: bool = False, memory_floor_mb: float | None = None,
                 isolation: Isolation | None = None, dedupe: bool = True) -> None:
        self.limits = limits or Limits()
        self.dedupe = dedupe
        self.isolation = isolation or Isolation()
        self.layers: list[LayerStatus] = []   # what the workers could apply (see hardening.py)
        self.workers = len(os.sched_getaffinity(0)) if workers is None else workers
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        total_mb = psutil.virtual_memory().total / 2**20
        self.memory_floor_mb = min(1024.0, 0.05 * total_mb) if memory_floor_mb is None else memory_floor_mb
        self.progress = progress
        self.stats = SandboxStats()
        self._pool: dict[int, _Worker] = {}
        self._dying: dict[int, _Worker] = {}      # pid -> killed or broken worker awaiting its exit status
        self._next_tag = 0
        self._start_failures = 0
        self._feed: _Feed | None = None   # the jobs of the imap call in progress
        self._active = False
        self._closed = False
        self._template = _Template.start()
        self._finalizer = weakref.finalize(self, _Template.stop, self._template)
        for _ in range(self.workers):
            self._spawn()
        self._await_workers()
        self._check_isolation()

    # -- public API -----------------------------------------------------------------
    def run(self, jobs: Iterable[Job | tuple], *, progress: bool | None = None) -> list[ProgramResult]:
        """Run every job; one result per job, in job order."""
        results = {r.index: r for r in self.imap(jobs, progress=progress)}
        return [results[i] for i in range(len(results))]

    def imap(self, jobs: Iterable[Job | tuple], *, progress: bool | None = None) -> Iterator[ProgramResult]:
        """Yield one result per job as it finishes (``result.index`` is the job's position).

        Jobs are pulled lazily, so a generator of a million jobs is never held in memory.
        Breaking out early kills the programs still running.
        """
        if self._closed:
            raise SandboxError("this Sandbox is closed")
        if self._active:
            raise SandboxError("imap/run is already running on this Sandbox (it is not re-entrant)")
        self._active = True
        show = self.progress if progress is None else progress
        total = len(jobs) if isinstance(jobs, Sequence) else None
        bar = tqdm(total=total, disable=not show, unit="prog", smoothing=0.05)
        try:
            for result in self._drive(_Feed(enumerate(jobs), self._prepare, self.dedupe, total)):
                bar.update()
                self.stats.programs += 1
                yield result
        finally:
            bar.close()
            self._abandon_running()
            self._active = False

    def close(self) -> None:
        """Kill every worker and the template. Safe to call twice; called by ``with``."""
        if self._closed:
            return
        self._closed = True
        for worker in list(self._pool.values()) + list(self._dying.values()):
            kill_group(worker.pid)
            worker.courier.close()
        self._pool.clear()
        self._dying.clear()
        self._finalizer()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_isolation(self) -> None:
        """Log which isolation layers are missing; fail if the caller required them."""
        _log.log(logging.WARNING if missing(self.layers) else logging.INFO, summary(self.layers))
        try:
            check_required(self.isolation, self.layers)
        except IsolationError:
            self.close()
            raise

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._pool.values() if w.pid]

    # -- the loop ---------------------------------------------------------------------
    def _drive(self, feed: "_Feed") -> Iterator[ProgramResult]:
        self._feed = feed
        next_guard = time.monotonic()
        while True:
            self._fill(feed)
            yield from feed.pop_decided()
            busy = [w for w in self._pool.values() if w.running]
            if feed.done and not busy and not any(w.running for w in self._dying.values()):
                return
            now = time.monotonic()
            if now >= next_guard:
                self._memory_guard()
                next_guard = now + _GUARD_PERIOD_S
            for result in self._collect(min([next_guard] + [w.running.deadline for w in busy])):
                yield result
                yield from feed.copies_of(result)

    def _fill(self, feed: "_Feed") -> None:
        """Give idle workers a job; while plenty are left, queue a second request behind each, so
        no round trip separates two programs (its reply pipe follows only once the running
        job's reply is checked: courier.py)."""
        for worker in [w for w in self._pool.values() if w.pid and w.running is None]:
            running = feed.take()
            if running is None:
                return
            self._dispatch(worker, running)
        for worker in [w for w in self._pool.values() if w.running and w.queued is None and w.takes_queued]:
            running = feed.take() if feed.plentiful(self.workers) else None
            if running is None:
                return
            if len(running.request()) > _MAX_QUEUED_BYTES:   # must not block the parent: wait for an idle worker
                feed.requeue(running)
                return
            self._dispatch(worker, running)

    def _collect(self, until: float) -> Iterator[ProgramResult]:
        """Wait for replies, deaths or a deadline; yield what finished."""
        waiting = {s: w for w in self._pool.values() if (s := w.courier.waitable()) is not None}
        ready = wait(list(waiting) + [self._template.ctrl], timeout=max(0.0, until - time.monotonic()))
        for obj in ready:
            if obj is self._template.ctrl:
                yield from self._template_messages()
            else:
                result = self._receive(waiting[obj])
                if result is not None:
                    yield result
        now = time.monotonic()
        for worker in list(self._pool.values()):
            if worker.running and now >= worker.running.deadline:
                reader = worker.courier.reader
                if reader is not None and reader.buf:   # it began a reply: a program wrote, or held it open
                    self._forged(worker, "the reply was incomplete, or its socket still open, at the deadline")
                else:
                    self._kill(worker, Status.TIMEOUT, "Timeout",
                               f"time limit of {self.limits.timeout_s} s reached (killed from outside)")
        for pid, worker in list(self._dying.items()):   # no exit status came: don't wait forever
            if now - worker.died_at > _EXIT_STATUS_WAIT_S:
                del self._dying[pid]
                yield from filter(None, [self._death_result(worker, None)])

    def _receive(self, worker: _Worker) -> ProgramResult | None:
        """Read what a worker sent; the job's result once its reply is complete and checked."""
        if worker.dead:
            return None
        courier = worker.courier
        if not worker.pid:   # a new worker's hello
            try:
                hello = courier.read_hello()
                if hello is not None:
                    worker.rss_kb, worker.cpu_s = int(hello["rss_kb"]), float(hello["cpu_s"])
                    self.layers = [LayerStatus.from_dict(d) for d in hello.get("layers", [])]
                    self._start_failures = 0
            except (WireError, ValueError, KeyError, TypeError):
                self._broken(worker)
            return None
        running = worker.running
        try:
            if not courier.pump():
                return None
            reply = Reply.parse(courier.reader.payload(), n_grids=len(running.job.inputs), max_side=self._max_side,
                                max_stdout=self.limits.max_stdout_bytes, max_error=self.limits.max_error_chars,
                                traced=running.job.trace_memory)
        except WireError as exc:
            if courier.reader is not None and courier.reader.buf:
                self._forged(worker, str(exc))
            else:   # closed with nothing written: its exit status will say how it died (or the deadline)
                courier.end_job()
            return None
        courier.end_job()
        worker.running = None
        result = self._result_from_reply(running, reply)
        worker.rss_kb, worker.cpu_s = reply.rss_kb, worker.cpu_s + reply.cpu_s
        if reply.retire:   # the worker leaves by itself, without reading what was queued for it
            self._retire(worker, reply.retire, result)
            return result
        threads = courier.threads()
        if threads is not None and threads > courier.threads0:   # they would run during the next job
            reason = f"the program left {threads - courier.threads0} thread(s) running"
        elif courier.marked():
            reason = "the pristine guard noted tampering that the program hid from the worker's own check"
        else:
            self._next(worker)
            return result
        self._retire(worker, reason, result)
        self._kill(worker, Status.CRASHED, "Killed", reason)
        return result

    def _next(self, worker: _Worker) -> None:
        """The reply checked out: the queued job (already running, most likely) gets its reply pipe."""
        worker.running, worker.queued = worker.queued, None
        if worker.running is None:
            return
        self._start_clock(worker.running)
        try:
            worker.courier.open_reply(worker.running.deadline)
        except OSError:
            self._broken(worker)

    def _forged(self, worker: _Worker, reason: str) -> None:
        """A reply that is not one well-formed frame for this job. A program's leftovers could
        have sent it, so the job runs once more on a fresh worker; a second time, it is its own."""
        running, worker.running = worker.running, None
        self.stats.workers_retired["forged or malformed reply"] += 1
        if running is not None and not running.requeued:
            running.requeued = True
            self._feed.requeue(running)
            self._kill(worker, Status.CRASHED, "ForgedReply", reason)   # nothing is reported for it
            return
        worker.running = running
        self._kill(worker, Status.CRASHED, "ForgedReply",
                   f"forged or malformed reply from the worker: {reason} (the program wrote to its "
                   "worker's sockets?)")

    def _template_messages(self) -> Iterator[ProgramResult]:
        messages = self._template.read()
        if messages is None:   # the template died (a program killed it?): start another
            yield from self._restart_template()
            return
        for message in messages:
            if message.get("op") == "exited":
                yield from filter(None, [self._last_reply(message["pid"])])
                worker = self._dying.pop(message["pid"], None) or self._find_pid(message["pid"])
                if worker is not None:
                    result = self._death_result(worker, message)
                    if result is not None:
                        yield result
            elif message.get("op") == "spawned":
                pass   # the worker's own hello carries what we need

    # -- jobs ---------------------------------------------------------------------------
    @property
    def _max_side(self) -> int:
        return max(30, self.limits.max_grid_side)

    def _prepare(self, index: int, item: Any) -> _Running | ProgramResult:
        """Validate and extract; return what to run, or the final result of a job that can't run."""
        try:
            job = _as_job(item)
        except (TypeError, ValueError) as exc:
            return _final(index, item, Status.INVALID_JOB, "InvalidJob", f"job {index}: {exc}", n=0)
        try:
            inputs = [as_grid(g, self.limits.max_input_side) for g in job.inputs]
            cells = sum(g.size for g in inputs)
            if cells > self.limits.max_input_cells:
                raise GridError(f"{cells} cells in all, more than Limits.max_input_cells={self.limits.max_input_cells}")
        except (GridError, TypeError) as exc:
            return _final(index, job, Status.INVALID_JOB, "InvalidJob", f"job {index}: input grid: {exc}",
                          n=len(job.inputs) if isinstance(job.inputs, Sequence) else 0)
        code = extract_code(job.text)
        if code is None:
            return _final(index, job, Status.NO_CODE, "NoCode",
                          "no program found (empty text or an unclosed ``` fence)", n=len(inputs))
        job = dataclasses.replace(job, inputs=inputs)
        return _Running(index, job, code, 0.0, 0.0)

    def _dispatch(self, worker: _Worker, running: _Running) -> None:
        if worker.running is None:
            worker.running = running
            self._start_clock(running)
        else:
            worker.queued = running
        try:
            worker.courier.send_request(running.request(), time.monotonic() + _SEND_WAIT_S)
            if worker.running is running:
                worker.courier.open_reply(running.deadline)
        except OSError:   # the worker is gone or does not read
            if worker.queued is running:
                # It may have exited right after writing the running job's reply (a worker that
                # retires does): that reply, or the pipe's end and the exit report, still says how
                # the running job ended, so only the queued job goes back.
                worker.queued, worker.takes_queued = None, False
                self._feed.requeue(running)
                return
            if worker.running is running:
                worker.running = None
                self._feed.requeue(running)
            self._broken(worker)   # puts a queued job (perhaps this one) back

    def _start_clock(self, running: _Running) -> None:
        running.started = time.monotonic()
        running.deadline = running.started + self.limits.timeout_s + self.limits.kill_grace_s

    def _result_from_reply(self, running: _Running, reply: Reply) -> ProgramResult:
        return ProgramResult(
            status=Status(reply.status), outputs=reply.outputs,
            grid_statuses=[Status(s) for s in reply.grid_statuses],
            error_type=reply.error_type, error_message=reply.error_message, stdout=reply.stdout,
            wall_s=time.monotonic() - running.started, cpu_s=reply.cpu_s,
            peak_memory_mb=reply.peak_kb / 1024, code=running.code, index=running.index, key=running.job.key,
            alloc_sites=sites_from_wire(reply.alloc_sites),
        )

    def _death_result(self, worker: _Worker, exit_info: dict | None) -> ProgramResult | None:
        """Turn a dead worker's exit (or our kill) into its job's result; None if it was idle."""
        self._spawn()
        running, worker.running = worker.running, None
        if running is None:
            return None
        if (exit_info is not None and worker.kill_reason is None and not running.requeued
                and os.WIFEXITED(exit_info["status"])
                and os.WEXITSTATUS(exit_info["status"]) == EXIT_REQUEST_LOST):   # it never read this job
            running.requeued = True
            self._feed.requeue(running)
            return None
        status, error_type, message = _classify_death(worker.kill_reason, exit_info)
        n = len(running.job.inputs)
        result = _final(running.index, running.job, status, error_type, message, n=n, code=running.code)
        result.wall_s = time.monotonic() - running.started
        result.worker_replaced = True
        if exit_info is not None:
            result.cpu_s = max(0.0, exit_info["cpu_s"] - worker.cpu_s)
            result.peak_memory_mb = max(0, exit_info["maxrss_kb"] - worker.rss_kb) / 1024
            if exit_info.get("strays"):
                result.notes.append(f"killed processes the program left behind: pids {exit_info['strays']}")
        return result

    # -- workers ----------------------------------------------------------------------------
    def _spawn(self) -> None:
        if self._closed:
            return
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        tag, self._next_tag = self._next_tag, self._next_tag + 1
        self._pool[tag] = _Worker(tag, Courier(parent_end))
        self._template.spawn(tag, child_end, dataclasses.asdict(self.limits), self.isolation.to_dict())
        child_end.close()
        self.stats.workers_started += 1

    def _await_workers(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not all(w.pid for w in self._pool.values()):
            pending = [w for w in self._pool.values() if not w.pid]
            ready = wait([w.courier.ctrl for w in pending] + [self._template.ctrl],
                         timeout=deadline - time.monotonic())
            if not ready:
                self.close()
                raise SandboxError(f"workers did not start within {_START_TIMEOUT_S:.0f} s")
            for worker in pending:
                if worker.courier.ctrl in ready:
                    self._receive(worker)
            if self._template.ctrl in ready and self._template.read() is None:
                self.close()
                raise SandboxError("the sandbox template process died while starting workers "
                                   "(see its error output above)")
            if any(w.dead for w in pending):
                self.close()
                raise SandboxError("a worker died during start-up (memory limit below the worker's needs?)")

    def _kill(self, worker: _Worker, status: Status, error_type: str, reason: str) -> None:
        worker.kill_reason = worker.kill_reason or (status, error_type, reason)
        kill_group(worker.pid)
        self._broken(worker)

    def _broken(self, worker: _Worker) -> None:
        """The worker is gone or unusable: wait for its exit status, then report and replace it."""
        if worker.dead:
            return
        self._requeue_waiting(worker)
        worker.dead, worker.died_at = True, time.monotonic()
        kill_group(worker.pid)
        worker.courier.close()
        self._pool.pop(worker.tag, None)
        if worker.pid:
            self._dying[worker.pid] = worker
            return
        self._start_failures += 1   # died before its hello: don't respawn forever
        if self._start_failures > _MAX_START_FAILURES:
            raise SandboxError(f"{self._start_failures} workers in a row died while starting "
                               "(is memory_mb too small for the worker's own needs?)")
        self._spawn()

    def _retire(self, worker: _Worker, reason: str, result: ProgramResult) -> None:
        """The worker leaves after ``result``'s program (it exits by itself, or is killed next)."""
        result.worker_replaced = True
        result.notes.append(f"worker retired: {reason}")
        self.stats.workers_retired[reason.split(":")[0][:80]] += 1
        self._requeue_waiting(worker)
        worker.dead, worker.died_at = True, time.monotonic()
        worker.courier.close()
        self._pool.pop(worker.tag, None)
        self._dying[worker.pid] = worker   # its exit message spawns the replacement

    def _requeue_waiting(self, worker: _Worker) -> None:
        """A job queued behind the running one never got its reply pipe: it goes back to the front."""
        if worker.queued is not None:
            self._feed.requeue(worker.queued)
            worker.queued = None

    def _last_reply(self, pid: int) -> ProgramResult | None:
        """A worker that replied, then exited (it retires by itself), may have its exit reported
        before its reply is read (both ready in one wait, or the pipe polled a moment too early):
        the reply is in its pipe by then, so read it first; its job is its reply's, not the exit's."""
        for worker in self._pool.values():
            if worker.pid == pid and worker.running and worker.courier.channel is not None:
                return self._receive(worker)
        return None

    def _find_pid(self, pid: int) -> _Worker | None:
        """A worker that exited before we noticed its pipe closing."""
        for worker in list(self._pool.values()):
            if worker.pid == pid:
                self._requeue_waiting(worker)
                worker.dead, worker.died_at = True, time.monotonic()
                worker.courier.close()
                self._pool.pop(worker.tag)
                return worker
        return None

    def _memory_guard(self) -> None:
        """Kill the largest running program when the host runs short, before the OOM killer
        picks a process for us (the trainer, say)."""
        available_mb = psutil.virtual_memory().available / 2**20
        if available_mb >= self.memory_floor_mb:
            return
        sizes = {}
        for worker in self._pool.values():
            if worker.running:
                try:
                    sizes[worker.tag] = psutil.Process(worker.pid).memory_info().rss
                except psutil.Error:
                    pass
        if sizes:
            worker = self._pool[max(sizes, key=sizes.get)]
            self.stats.guard_kills += 1
            self._kill(worker, Status.MEMORY_LIMIT, "MemoryGuard",
                       f"host memory guard: {available_mb:.0f} MB available, under the floor of "
                       f"{self.memory_floor_mb:.0f} MB; this program held {sizes[worker.tag] / 2**20:.0f} MB "
                       "(the largest running)")

    def _restart_template(self) -> Iterator[ProgramResult]:
        """Workers die with their template: re-run the jobs they held, once, on fresh ones."""
        self.stats.template_restarts += 1
        lost = list(self._pool.values()) + list(self._dying.values())
        self._pool.clear()
        self._dying.clear()
        _Template.stop(self._template)
        self._template = _Template.start()
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _Template.stop, self._template)
        for worker in lost:
            kill_group(worker.pid)
            worker.dead = True
            worker.courier.close()
            self._requeue_waiting(worker)
            running = worker.running
            if running is None:
                continue
            if running.requeued or worker.kill_reason:
                yield self._death_result_without_status(worker, running)
            else:
                running.requeued = True
                self._feed.requeue(running)
        for _ in range(self.workers - len(self._pool)):
            self._spawn()

    def _death_result_without_status(self, worker: _Worker, running: _Running) -> ProgramResult:
        status, error_type, message = _classify_death(
            worker.kill_reason or (Status.CRASHED, "Lost", "its worker died twice with the sandbox's template "
                                   "process (does the program kill its parent process?)"), None)
        result = _final(running.index, running.job, status, error_type, message,
                        n=len(running.job.inputs), code=running.code)
        result.wall_s = time.monotonic() - running.started
        result.worker_replaced = True   # its worker died with the template
        return result

    def _abandon_running(self) -> None:
        """The caller stopped iterating: nobody wants the programs still running."""
        for worker in list(self._pool.values()):
            worker.queued = None
            if worker.running:
                self._kill(worker, Status.CRASHED, "Killed", "abandoned")
        for worker in self._dying.values():
            worker.running = None


class _Feed:
    """Jobs on their way to workers: validated lazily, duplicates held back, re-runs first."""

    def __init__(self, source: Iterator[tuple[int, Any]], prepare, dedupe: bool, total: int | None) -> None:
        self._prepared = (prepare(i, item) for i, item in source)
        self._dedupe, self._total, self._taken = dedupe, total, 0
        self._ready: collections.deque[_Running] = collections.deque()
        self._decided: list[ProgramResult] = []      # results known without running anything
        self._copies: dict[bytes, list[_Running]] = {}   # identity -> duplicates waiting for the first run
        self._originals: dict[int, bytes] = {}           # index of a running original -> its identity
        self._finished: collections.OrderedDict[bytes, ProgramResult] = collections.OrderedDict()
        self.exhausted = False

    @property
    def done(self) -> bool:
        return self.exhausted and not self._ready

    def take(self) -> _Running | None:
        """The next job to run, or None when there is none (yet)."""
        while not self._ready and not self.exhausted:
            item = next(self._prepared, None)
            if item is None:
                self.exhausted = True
            elif isinstance(item, ProgramResult):
                self._decided.append(item)
            elif self._dedupe and (identity := item.identity()) in self._finished:
                self._decided.append(_reused(self._finished[identity], item))
            elif self._dedupe and identity in self._copies:
                self._copies[identity].append(item)
            else:
                if self._dedupe:
                    self._copies[identity], self._originals[item.index] = [], identity
                self._ready.append(item)
        if not self._ready:
            return None
        self._taken += 1
        return self._ready.popleft()

    def plentiful(self, workers: int) -> bool:
        """Enough jobs left that queueing one behind a running program can't make a straggler."""
        left = None if self._total is None else self._total - self._taken
        return (bool(self._ready) or not self.exhausted) and (left is None or left >= 2 * workers)

    def requeue(self, running: _Running) -> None:
        self._taken -= 1
        self._ready.appendleft(running)

    def pop_decided(self) -> list[ProgramResult]:
        decided, self._decided = self._decided, []
        return decided

    def copies_of(self, result: ProgramResult) -> list[ProgramResult]:
        """Results for the duplicates that waited on ``result``; remember it for later ones."""
        identity = self._originals.pop(result.index, None)
        if identity is None:
            return []
        copies = self._copies.pop(identity)
        if result.status is Status.TIMEOUT or result.error_type in _CIRCUMSTANTIAL:
            if copies:   # another run may well end differently: the first duplicate runs, the rest wait on it
                self._copies[identity], self._originals[copies[0].index] = copies[1:], identity
                self._ready.appendleft(copies[0])
            return []
        self._finished[identity] = result
        if len(self._finished) > _DEDUPE_MEMORY:
            self._finished.popitem(last=False)
        return [_reused(result, copy) for copy in copies]


class _Template:
    """The parent's handle on the template process (see template.py)."""

    def __init__(self, proc: subprocess.Popen, ctrl: socket.socket) -> None:
        self.proc, self.ctrl = proc, ctrl

    @classmethod
    def start(cls) -> "_Template":
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        proc = subprocess.Popen(
            [sys.executable, "-m", "arc_sandbox.executor.template", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=_worker_env(), stdin=subprocess.DEVNULL, start_new_session=True,
        )
        theirs.close()
        template = cls(proc, ours)
        if not wait([ours], timeout=_START_TIMEOUT_S) or template.read() is None:
            cls.stop(template)
            raise SandboxError("the sandbox template process failed to start (see its error output above)")
        return template

    def spawn(self, tag: int, child_end: socket.socket, limits: dict, isolation: dict) -> None:
        message = json.dumps({"op": "spawn", "tag": tag, "limits": limits, "isolation": isolation}).encode()
        try:
            socket.send_fds(self.ctrl, [message], [child_end.fileno()])
        except OSError:
            pass   # the template is gone; the loop notices and restarts it

    def read(self) -> list[dict] | None:
        """Messages waiting on the control socket; None when the template is gone."""
        messages = []
        while True:
            try:
                data = self.ctrl.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return messages
            except OSError:
                return None
            if not data:
                return None
            messages.append(json.loads(data))

    @staticmethod
    def stop(template: "_Template") -> None:
        try:
            template.ctrl.send(json.dumps({"op": "shutdown"}).encode())
        except OSError:
            pass
        template.ctrl.close()
        try:
            template.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(template.proc.pid)
            template.proc.wait()
        remove_workdirs(template.proc.pid)   # in case the template was killed


def run_program(text: str, inputs: Sequence[Any], limits: Limits | None = None, *,
                entry: str | None = None) -> ProgramResult:
    """Run one program in a fresh one-worker sandbox. Convenient, not fast: use a Sandbox for batches."""
    with Sandbox(workers=1, limits=limits) as sb:
        return sb.run([Job(text, inputs, entry=entry)])[0]


# -- helpers ---------------------------------------------------------------------------------
def _reused(result: ProgramResult, copy: _Running) -> ProgramResult:
    return dataclasses.replace(
        result, index=copy.index, key=copy.job.key, outputs=[None if g is None else g.copy() for g in result.outputs],
        grid_statuses=list(result.grid_statuses), notes=[*result.notes, f"same program and inputs as job {result.index}: "
                                                                         "result reused"])


def _as_job(item: Any) -> Job:
    job = as_job(item)
    if not isinstance(job.text, str):
        raise TypeError(f"program text must be a string, got {type(job.text).__name__}")
    if not isinstance(job.inputs, Sequence) and not hasattr(job.inputs, "__len__"):
        raise TypeError(f"inputs must be a sequence of grids, got {type(job.inputs).__name__}")
    if job.entry is not None and not (isinstance(job.entry, str) and job.entry.isidentifier()):
        raise ValueError(f"entry must be a function name, got {job.entry!r}")
    return job


def _final(index: int, job: Any, status: Status, error_type: str, message: str, *, n: int,
           code: str = "") -> ProgramResult:
    return ProgramResult(status=status, outputs=[None] * n, grid_statuses=[status] * n, error_type=error_type,
                         error_message=message, code=code, index=index,
                         key=job.key if isinstance(job, Job) else None)


def _classify_death(kill_reason: tuple[Status, str, str] | None, exit_info: dict | None) -> tuple[Status, str, str]:
    if kill_reason is not None:
        return kill_reason
    if exit_info is None:
        return Status.CRASHED, "Lost", "the worker disappeared"
    code = exit_info["status"]
    if os.WIFSIGNALED(code):
        sig = signal.Signals(os.WTERMSIG(code))
        if sig is signal.SIGXCPU:
            return Status.TIMEOUT, "SIGXCPU", "CPU time limit reached"
        hint = " (by another process or the kernel's out-of-memory killer)" if sig is signal.SIGKILL else ""
        return Status.CRASHED, sig.name, f"the worker was killed by {sig.name}{hint}"
    exit_code = os.WEXITSTATUS(code)
    if exit_code == EXIT_REPLY_LOST:
        return Status.CRASHED, "ChannelClosed", "the program closed or replaced its worker's reply pipe or files"
    if exit_code == EXIT_REQUEST_LOST:
        return (Status.CRASHED, "ChannelClosed",
                "the worker could not read its next message (the program closed or read its control socket)")
    return (Status.CRASHED, f"exit({exit_code})",
            f"the worker process ended with code {exit_code} while running the program "
            "(os._exit, or it closed the worker's pipe)")


def _worker_env() -> dict[str, str]:
    """A scrubbed environment: the trainer's API tokens stay out of reach of generated code."""
    env = {k: os.environ[k] for k in TEMPLATE_ENV if k in os.environ}
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update(THREAD_ENV)
    env["PYTHONHASHSEED"] = "0"   # set iteration order of strings is reproducible across runs
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
