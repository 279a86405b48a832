"""The worker: runs programs one after another in a limited world it keeps pristine.

Runs in a process forked from the template (see ``template.py``), never in the caller.
Everything here is on the per-program path, so it stays lean.
"""
from __future__ import annotations

import builtins
import ctypes
import dis
import functools
import json
import linecache
import os
import random
import resource
import signal
import socket
import sys
import time
import traceback
import types

import numpy as np

from arc_sandbox.dsl import common
from .alloc_trace import AllocTracer
from .grids import GridError, as_grid
from .hardening import harden_current_process, reap_descendants
from .limits import Limits
from .pristine import PROGRAM_MODULE, Guard
from .results import Status
from .wire import (EXIT_REPLY_LOST, EXIT_REQUEST_LOST, MAX_REPLY_BYTES, Reply, Request, WireError, frame,
                   frame_length)

PROGRAM_FILE = "<program>"
_RAISE = dis.opmap["RAISE_VARARGS"]
_PR_SET_PDEATHSIG = 1
# Retire a worker whose own footprint crept up by this much: the program's allowance is
# counted from the baseline measured at start.
_MAX_GROWTH_KB = 64 * 1024
# A worker's lifetime CPU allowance (hard RLIMIT_CPU, which it cannot raise); it retires before.
_CPU_CAP_S = 3600
# A program that leaves more than this resident gets the heap it freed trimmed (see settle).
_TRIM_ABOVE_KB = 2048
_LIBC = ctypes.CDLL(None)
_reset_common = common.reset_state   # taken now: a program may rebind the module's name
_M_MMAP_THRESHOLD = -3
# Read through the C descriptors: a program's exception class may shadow them with properties.
_TRACEBACK = BaseException.__traceback__.__get__
_CONTEXT = BaseException.__context__.__get__


class Deadline(BaseException):
    """Raised in the program when its time is up. BaseException: ``except Exception`` can't eat it."""


class _BoundedWriter:
    """sys.stdout for a program: keeps the first ``limit`` characters, counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.size, self.dropped = limit, [], 0, 0

    def write(self, text) -> int:
        text = str(text)
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        tail = f"\n[... {self.dropped} more characters dropped]" if self.dropped else ""
        return "".join(self.parts) + tail


class MemoryProbe:
    """Per-program peak RSS: reset the kernel's high-water mark, read it back.

    Writing "5" to /proc/self/clear_refs resets the high-water mark that ``getrusage``
    reports as ``ru_maxrss``; sizes come from /proc/self/statm (cheaper than status).
    """

    _PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

    def __init__(self, enabled: bool) -> None:
        self.statm_fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            self.clear_fd = os.open("/proc/self/clear_refs", os.O_WRONLY) if enabled else -1
        except OSError:
            self.clear_fd = -1
        if self.clear_fd >= 0 and hasattr(_LIBC, "mallopt"):
            # Freeze glibc's mmap threshold at its default: by default every freed big block raises
            # it, and blocks up to 32 MB then come from a heap that keeps them resident after free,
            # inflating peaks (a string doubled to 128 MB measured 223 MB instead of 192).
            _LIBC.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)

    def sizes_kb(self) -> tuple[int, int]:
        """(virtual size, resident size) of this process in kB."""
        size, resident = os.pread(self.statm_fd, 128, 0).split()[:2]
        return int(size) * self._PAGE_KB, int(resident) * self._PAGE_KB

    def rss_kb(self) -> int:
        return self.sizes_kb()[1]

    def vm_kb(self) -> int:
        return self.sizes_kb()[0]

    def reset_peak(self) -> int:
        """Reset the high-water mark to the current RSS; return that RSS (the program's baseline)."""
        if self.clear_fd < 0:
            return 0
        os.write(self.clear_fd, b"5")
        return self.rss_kb()

    def peak_kb(self) -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if self.clear_fd >= 0 else 0

    def settle(self, rss0: int) -> int:
        """RSS after a program, once the heap it freed is back with the kernel: malloc keeps freed
        memory resident (tens of MB after a big temporary), and a later program reusing it would
        not raise its own peak, under-reporting it."""
        rss = self.rss_kb()
        if self.clear_fd >= 0 and rss - rss0 > _TRIM_ABOVE_KB and hasattr(_LIBC, "malloc_trim"):
            _LIBC.malloc_trim(0)
            rss = self.rss_kb()
        return rss


def serve(fd: int, limits: Limits, isolation: dict | None = None) -> None:
    """Worker main loop: set up, say hello, then run requests until the parent goes away.

    ``fd`` is the control socket. Each job comes on it as a request, then, only once the
    parent has checked the previous reply, as the reply pipe for it (see courier.py). The
    worker says hello and then shuts its sending side, so nothing a program writes later
    can travel on it.
    """
    ctrl = socket.socket(fileno=fd)
    _detach()
    probe = MemoryProbe(limits.measure_memory)
    base_rss, base_vm = probe.rss_kb(), probe.vm_kb()
    mem_limit = (base_vm + int(limits.memory_mb * 1024)) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    resource.setrlimit(resource.RLIMIT_CPU, (_CPU_CAP_S, _CPU_CAP_S))
    signal.signal(signal.SIGALRM, _on_alarm)
    layers = harden_current_process(isolation)   # after imports and limits, before any program
    guard = Guard(exempt=(common.Color,), cpu_cap_s=_CPU_CAP_S,
                  trusted_frames=(common._check_recursion_budget.__code__,))
    # Taken now, before any program: the worker never looks the guard's methods up again.
    arm, disarm, trust, heal, check = guard.operations()
    ops = (arm, disarm, trust, heal)
    threads0 = _thread_count()
    ctrl.sendall(frame(_hello(base_rss, base_vm, mem_limit, layers)))
    ctrl.shutdown(socket.SHUT_WR)
    for served in range(1, limits.max_programs_per_worker + 1):
        request = _next_request(ctrl, limits)
        try:
            reply = run_request(request, limits, probe, ops)
        except OSError:   # the program closed or replaced the worker's own files (/proc handles...)
            os._exit(EXIT_REPLY_LOST)
        reply.retire = check(request.code)
        # Every way to start a process from Python is audited, so only a tainted run can
        # have left one behind: skip the /proc walk otherwise.
        strays = reap_descendants() if reply.retire else []
        if strays:
            reply.retire = f"killed processes the program left behind: pids {strays}"
        threads = _thread_count() - threads0   # they would run during the next program
        if threads > 0:
            reply.retire = reply.retire or f"the program left {threads} thread(s) running"
        reply.retire = reply.retire or _growth(probe, base_rss, base_vm) or _cpu_spent(limits)
        if served == limits.max_programs_per_worker:
            reply.retire = reply.retire or f"recycled after {served} programs"
        _send_reply(_reply_pipe(ctrl), reply)
        if reply.retire:
            break
    os._exit(0)


def _read_frame(ctrl: socket.socket) -> tuple[bytes, list[int]] | None:
    """One frame from the control socket and the descriptors that came with it; None at end of
    file. Reads exactly the frame: the next one may already be waiting behind it."""
    buf, fds = bytearray(), []
    while len(buf) < 4 or len(buf) < 4 + frame_length(buf):
        want = 4 - len(buf) if len(buf) < 4 else 4 + frame_length(buf) - len(buf)
        data, got, _, _ = socket.recv_fds(ctrl, want, 1)
        fds += got
        if not data:
            return None
        buf += data
    return bytes(buf[4:]), fds


def _next_request(ctrl: socket.socket, limits: Limits) -> Request:
    """The next request; exits when the parent has gone, or when a program broke the socket
    (read part of what was waiting in it): the parent then runs that job again elsewhere."""
    try:
        got = _read_frame(ctrl)
        if got is None:
            os._exit(0)
        data, fds = got
        if fds or not data:
            raise WireError("a reply pipe where a request was expected")
        return Request.from_bytes(data, limits.max_input_side)
    except (OSError, ValueError, KeyError, TypeError):
        os._exit(EXIT_REQUEST_LOST)


def _reply_pipe(ctrl: socket.socket) -> int:
    """The reply pipe for the program that just ran: the parent sends it only once it has
    checked the previous reply, so no program ever holds the pipe of a job after its own."""
    try:
        got = _read_frame(ctrl)
        if got is None:
            os._exit(0)
        data, fds = got
        if data or len(fds) != 1:
            raise WireError("a request where a reply pipe was expected")
        return fds[0]
    except (OSError, ValueError):   # ValueError: WireError, or a length prefix cut by a program's read
        os._exit(EXIT_REQUEST_LOST)


def _thread_count(_stat=os.stat) -> int:
    """Threads of this process: /proc/self/task has two links plus one per thread."""
    return _stat("/proc/self/task").st_nlink - 2


def _send_reply(fd: int, reply: Reply) -> None:
    data = reply.to_bytes()
    if len(data) + 4 > MAX_REPLY_BYTES:   # only a job with thousands of inputs gets here
        n = len(reply.grid_statuses)
        data = Reply(status=Status.INVALID_OUTPUT.value, grid_statuses=[Status.INVALID_OUTPUT.value] * n,
                     outputs=[None] * n, error_type="ReplyTooLarge",
                     error_message=f"the reply ({len(data)} bytes) is over the {MAX_REPLY_BYTES}-byte cap: "
                                   "split the job into fewer inputs", cpu_s=reply.cpu_s, peak_kb=reply.peak_kb,
                     rss_kb=reply.rss_kb, retire=reply.retire).to_bytes()
    view = memoryview(frame(data))
    try:
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
    except OSError:   # the parent closed it: it was not waiting for this reply any more
        os._exit(EXIT_REPLY_LOST)


def _hello(rss_kb: int, vm_kb: int, mem_limit: int, layers: list) -> bytes:
    return json.dumps({"pid": os.getpid(), "rss_kb": rss_kb, "vm_kb": vm_kb, "cpu_s": time.process_time(),
                       "memory_limit_bytes": mem_limit, "layers": [s.to_dict() for s in layers]}).encode()


def _detach() -> None:
    """Own process group (killed as one), die with the template, no core dumps, no terminal."""
    os.setsid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):   # C-level writes to stdout go nowhere, whatever their size
        os.dup2(devnull, std)
    os.close(devnull)


def _growth(probe: MemoryProbe, base_rss: int, base_vm: int) -> str | None:
    vm, rss = probe.sizes_kb()
    if rss - base_rss > _MAX_GROWTH_KB or vm - base_vm > _MAX_GROWTH_KB:
        return f"worker grew by {(rss - base_rss) // 1024} MB resident, {(vm - base_vm) // 1024} MB virtual"
    return None


def _cpu_budget(limits: Limits) -> None:
    """RLIMIT_CPU as a kernel backstop: SIGXCPU kills a program that outlives its time by a
    second of CPU even if the alarm is blocked and the parent cannot kill (it never should)."""
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]   # the guard lowers it to mark tampering
    soft = min(hard, int(time.process_time() + limits.timeout_s) + 2)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _cpu_spent(limits: Limits) -> str | None:
    if time.process_time() + limits.timeout_s + 2 >= _CPU_CAP_S:
        return f"worker used its {_CPU_CAP_S} s of CPU time"
    return None


_in_program = False   # the alarm only interrupts the program, never the worker's own bookkeeping


def _on_alarm(signum, frame):
    if not _in_program:
        return
    # Fire again shortly in case the program swallows this one with a bare ``except:``;
    # the parent's hard kill is the last word anyway.
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    raise Deadline()


class _Run:
    """The state of one program's run, filled in as it goes."""

    def __init__(self, n: int) -> None:
        self.statuses = [Status.TIMEOUT] * n
        self.outputs: list[np.ndarray | None] = [None] * n
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.namespace: dict = {}   # the program's globals

    def fail(self, status: Status, grids: range, exc: BaseException | None, code: str, limit: int,
             trust) -> None:
        for i in grids:
            self.statuses[i] = status
        if self.error_type is None and exc is not None:
            self.error_type = type(exc).__name__
            self.error_message = _error_text(exc, code, limit, trust)


def run_request(request: Request, limits: Limits, probe: MemoryProbe, ops: tuple) -> Reply:
    """Run one program; ``ops`` are the guard's (arm, disarm, trust, heal_builtins)."""
    global _in_program
    arm, disarm, trust, heal = ops
    n = len(request.inputs)
    run = _Run(n)
    out = _BoundedWriter(limits.max_stdout_bytes)
    _reset_common()
    rss0 = probe.reset_peak()
    cpu0 = time.process_time()
    saved = sys.stdout, sys.stderr
    done = 0   # grids finished; the rest are still TIMEOUT if the deadline strikes
    tracer = AllocTracer(request.code) if request.trace_memory else None
    if tracer:
        tracer.start()
    try:
        _set_stdio(out, out)
        arm()
        _in_program = True
        _cpu_budget(limits)
        signal.setitimer(signal.ITIMER_REAL, limits.timeout_s)
        fn = _load(request, limits, run, trust)
        if fn is not None and tracer:
            fn = tracer.wrap(fn)
        if fn is not None:
            for i, grid in enumerate(request.inputs):
                _call(fn, grid, i, limits, run, request.code, trust)
                done = i + 1
        else:
            done = n
    except Deadline:
        if done < n and run.error_type is None:
            run.error_type, run.error_message = "Timeout", f"time limit of {limits.timeout_s} s reached"
    finally:
        _in_program = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        # The program's functions and globals form a cycle that only a full gc would free:
        # break it now, so its memory is not carried into the next program's baseline.
        run.namespace.clear()
        disarm()
        alloc_sites = tracer.stop() if tracer else []
        heal()
        _set_stdio(*saved)
    peak = max(0, probe.peak_kb() - rss0)
    status = next((s for s in run.statuses if s is not Status.OK), Status.OK)
    return Reply(status=status.value, grid_statuses=[s.value for s in run.statuses], outputs=run.outputs,
                 error_type=run.error_type, error_message=run.error_message, stdout=out.getvalue(),
                 cpu_s=time.process_time() - cpu0, peak_kb=peak, rss_kb=probe.settle(rss0),
                 alloc_sites=alloc_sites)


def _load(request: Request, limits: Limits, run: _Run, trust):
    """Compile and execute the program's top level; return its entry function or None."""
    n, code = len(request.inputs), request.code
    try:
        compiled = _compile(code)
    except Exception as exc:   # SyntaxError; ValueError for NUL bytes; RecursionError for deep nesting
        run.fail(Status.SYNTAX_ERROR, range(n), exc, code, limits.max_error_chars, trust)
        return None
    namespace = run.namespace = {"__name__": PROGRAM_MODULE, "__builtins__": builtins}
    _seed(limits.seed)
    try:
        exec(compiled, namespace)
    except Deadline:
        raise
    except BaseException as exc:
        run.fail(_exception_status(exc, trust), range(n), exc, code, limits.max_error_chars, trust)
        return None
    for name in ((request.entry,) if request.entry else ("transform", "main")):
        fn = namespace.get(name)
        if callable(fn):
            return fn
    wanted = request.entry or "transform or main"
    run.fail(Status.MISSING_ENTRY, range(n), None, code, limits.max_error_chars, trust)
    run.error_type = "MissingEntry"
    run.error_message = f"no function named {wanted} in the program"[:limits.max_error_chars]
    return None


def _call(fn, grid: np.ndarray, i: int, limits: Limits, run: _Run, code: str, trust) -> None:
    _seed(limits.seed)
    try:
        result = fn(grid)
        run.outputs[i] = as_grid(result, limits.max_grid_side)
        run.statuses[i] = Status.OK
    except Deadline:
        raise
    except GridError as exc:
        run.statuses[i] = Status.INVALID_OUTPUT
        if run.error_type is None:
            run.error_type = "InvalidOutput"
            run.error_message = f"output for input {i}: {exc}"[:limits.max_error_chars]
    except BaseException as exc:   # SystemExit, KeyboardInterrupt... are the program's errors too
        run.fail(_exception_status(exc, trust), range(i, i + 1), exc, code, limits.max_error_chars, trust)


@functools.lru_cache(maxsize=256)
def _compile(code: str):
    """Code objects are immutable, so GRPO's duplicate completions compile once."""
    return compile(code, PROGRAM_FILE, "exec")


def _set_stdio(out, err) -> None:
    # sys is a watched module (pristine.py): set through ModuleType to skip the watch hook.
    types.ModuleType.__setattr__(sys, "stdout", out)
    types.ModuleType.__setattr__(sys, "stderr", err)


def _seed(seed: int | None) -> None:
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)


def _exception_status(exc: BaseException, trust) -> Status:
    """MEMORY_LIMIT only for allocations that failed, not for a ``raise MemoryError`` in code; also
    when the program caught the failed allocation and raised something else while handling it."""
    for _ in range(8):   # the __context__ chain; bounded, a program can make it a cycle
        if exc is None:
            break
        if isinstance(exc, MemoryError) and not _raised_explicitly(exc, trust):
            return Status.MEMORY_LIMIT
        exc = _CONTEXT(exc)
    return Status.RUNTIME_ERROR


def _raised_explicitly(exc: BaseException, trust) -> bool:
    """Whether the innermost frame stopped on a ``raise`` statement (a failed allocation stops on a call)."""
    tb = _TRACEBACK(exc)
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    trust(True)
    try:
        return tb.tb_frame.f_code.co_code[tb.tb_lasti] == _RAISE
    finally:
        trust(False)


def _program_frames(exc: BaseException, trust) -> list[tuple[str, int, str]]:
    """(file, line, function) of the traceback from the program's first frame: the worker's own are noise."""
    frames, tb = [], _TRACEBACK(exc)
    trust(True)   # tracebacks, frames and code objects only: no program code runs here
    try:
        while tb is not None:
            code = tb.tb_frame.f_code
            if frames or code.co_filename == PROGRAM_FILE:
                frames.append((code.co_filename, tb.tb_lineno, code.co_name))
            tb = tb.tb_next
    finally:
        trust(False)
    return frames


def _error_text(exc: BaseException, code: str, limit: int, trust) -> str:
    lines = code.splitlines()
    parts = ["Traceback (most recent call last):\n"]
    for filename, lineno, name in _program_frames(exc, trust):
        parts.append(f'  File "{filename}", line {lineno}, in {name}\n')
        if filename == PROGRAM_FILE:
            text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        else:
            text = linecache.getline(filename, lineno)
        if text.strip():
            parts.append(f"    {text.strip()}\n")
    if len(parts) == 1:
        parts.clear()
    try:   # may run the program's own __str__: outside the trusted window
        parts.extend(traceback.format_exception_only(type(exc), exc))
    except BaseException:  # a hostile __str__ or __repr__
        parts.append(f"{type(exc).__name__} (its message could not be rendered)")
    text = "".join(parts)
    return text if len(text) <= limit else "..." + text[-limit:]
