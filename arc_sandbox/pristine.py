"""Proving that a persistent worker's world is still pristine after a program.

Workers are reused (forking per program costs 10x more than running a typical one), so
each program must leave no trace for the next. Three cheap nets, checked after every
program; any catch retires the worker (the parent starts a fresh one from the template):

1. Every module's class is swapped for one that notes ``module.attr = ...`` and ``del``.
2. An audit hook notes the rare events that reach past normal attributes (class
   attribute writes outside the program, ctypes, gc referrers, fork/exec, chdir...).
3. A small tuple of runtime state (recursion limit, trace hooks, stdio, sys.path,
   numpy error mode, warnings filters, cwd, threads, signal handlers, interval timers,
   gc callbacks) is compared.

The guard protects itself. No module refers to it (a program can read any module through
``sys.modules``): only the worker's frames and the audit hook do, and reaching those takes a
frame (``sys._getframe``, ``tb_frame``, ``gi_frame``...) or the garbage collector, which are
audited. Every note is also written where no program can erase it: the worker's hard
``RLIMIT_CPU`` is lowered by a second, which an unprivileged process can never raise back,
and ``check`` reads it from the kernel. Everything ``check`` calls is bound when the guard is
made, so rebinding names in modules (``Guard.check``, ``pristine.np``...) does not reach it.

Writes straight into a module ``__dict__`` bypass (1); they need names such as
``__dict__``, ``vars(``, ``setattr`` or ``sys`` in the source, so such programs (and every
``SWEEP_EVERY``-th program) also get a full sweep of every module's namespace (~0.3 ms).
"""
from __future__ import annotations

import builtins
import contextlib
import faulthandler
import gc
import os
import re
import resource
import signal
import sys
import threading
import types
import warnings

import numpy as np

PROGRAM_MODULE = "__arc_program__"
SWEEP_EVERY = 256

_DEEP_ACCESS = re.compile(
    r"__dict__|\bvars\s*\(|globals|setattr|delattr|__builtins__|\bsys\b|importlib|\bgc\b|ctypes"
    r"|\binspect\b|__class__|__code__|__defaults__|__globals__|__closure__|\bexec\s*\(|\beval\s*\("
    r"|__import__|getattr\s*\(|__setattr__|mappingproxy"
)
_TAINTING_EVENTS = frozenset({
    "sys.addaudithook", "sys.setprofile", "sys.settrace", "gc.get_referrers", "gc.get_referents",
    "gc.get_objects", "os.chdir", "os.fchdir", "os.putenv", "os.unsetenv", "os.fork", "os.forkpty",
    "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen", "os.kill", "os.killpg",
    "signal.pthread_kill", "_thread.start_new_thread", "code.__new__", "function.__new__",
    "sys._current_frames", "arc_sandbox.module_changed",
})
# Attributes whose audited read hands out a frame, and from a frame every caller's locals.
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
_CPU = resource.RLIMIT_CPU


class Guard:
    """Installed once per worker after preloading; ``check`` after each program."""

    def __init__(self, exempt: tuple[object, ...] = (), cpu_cap_s: int | None = None,
                 trusted_frames: tuple[types.CodeType, ...] = ()) -> None:
        self._exempt = exempt        # objects reset by other means (common.Color)
        self._trusted_frames = trusted_frames   # code that may call sys._getframe (common's recursion budget)
        self._cpu_cap = cpu_cap_s    # the hard RLIMIT_CPU; lowered by a second when something is noted
        self._marked = False
        self._notes: list[str] = []
        self._armed = False
        self._trusted = False        # the worker's own traceback walk: frame reads are expected
        self._count = 0
        self._modules: dict[str, types.ModuleType] = {}
        self._seen = -1   # len(sys.modules) at the last adoption
        self._snapshots: dict[str, tuple[dict, list]] = {}
        self._deep_access = _DEEP_ACCESS
        self._hooks = (_WatchedModule.__dict__["__setattr__"], _WatchedModule.__dict__["__delattr__"])
        self._getrlimit, self._setrlimit = resource.getrlimit, resource.setrlimit
        self._cancel_dumps = faulthandler.cancel_dump_traceback_later
        self._state = _runtime_probe()
        self._adopt_new_modules()
        self._runtime = self._state()
        self._builtins = dict(builtins.__dict__)
        self._builtin_values = list(self._builtins.values())
        sys.addaudithook(self._audit)

    # -- arming: only the program's own actions count -------------------------------
    def arm(self) -> None:
        self._armed = True

    def disarm(self) -> None:
        self._armed = False

    def heal_builtins(self) -> None:
        """Put builtins back at once: the worker's own bookkeeping needs a working ``len``."""
        namespace = builtins.__dict__
        if len(namespace) != len(self._builtins) or list(namespace.values()) != self._builtin_values:
            namespace.clear()
            namespace.update(self._builtins)
            self._notes.append("builtins changed")

    @contextlib.contextmanager
    def trusted(self):
        """The worker reads frames of a traceback itself; no program code runs meanwhile."""
        self._trusted = True
        try:
            yield
        finally:
            self._trusted = False

    def note(self, reason: str) -> None:
        if not self._armed:
            return
        if len(self._notes) < 8:
            self._notes.append(reason)
        if not self._marked and self._cpu_cap:
            self._marked = True
            try:   # the mark a program cannot take back (it cannot raise a hard limit)
                soft, _ = self._getrlimit(_CPU)
                mark = self._cpu_cap - 1
                self._setrlimit(_CPU, (mark if soft < 0 else min(soft, mark), mark))
            except (ValueError, OSError):
                pass

    def _audit(self, event: str, args: tuple) -> None:
        # Runs inside whatever raised the event, the program included: it calls no method of
        # the event's arguments (they may be the program's objects), only identity and type tests.
        if not self._armed:
            return
        if event in ("object.__setattr__", "object.__delattr__"):
            target = args[0]
            if any(target is e for e in self._exempt) or _owned_by_program(target):
                return
            self.note(f"{event} {_text(args[1])} of a {_type_name(type(target))}")
        elif event == "object.__getattr__":
            if not self._trusted and type(args[1]) is str and args[1] in _FRAME_ATTRIBUTES:
                self.note(f"read {args[1]} (a frame)")
        elif event == "sys._getframe":
            if not self._trusted and not (type(args[0]) is types.FrameType
                                          and any(args[0].f_code is c for c in self._trusted_frames)):
                self.note("sys._getframe")
        elif event == "arc_sandbox.module_changed" and len(args) == 2:
            self.note(f"set {_text(args[0])}.{_text(args[1])}")
        elif event in _TAINTING_EVENTS or event.startswith("ctypes."):
            self.note(f"audited event {event}")

    # -- the check ----------------------------------------------------------------------
    def check(self, code: str) -> str | None:
        """Return why the world is no longer pristine, or None. Resets the notes."""
        self._count += 1
        reasons, self._notes = self._notes, []
        self._cancel_dumps()   # a faulthandler dump armed by the program would write during the next one
        if self._cpu_cap and self._getrlimit(_CPU)[1] != self._cpu_cap and not reasons:
            reasons.append("the program reached the worker's internals (its notes were erased)")
        if self._state() != self._runtime:
            reasons.append("interpreter state changed (recursion limit, stdio, sys.path, numpy errstate, "
                           "warnings filters, cwd, threads, signal handlers, timers or gc callbacks)")
        if (_WatchedModule.__dict__.get("__setattr__"), _WatchedModule.__dict__.get("__delattr__")) != self._hooks:
            reasons.append("the module watch was replaced")
        if self._count % SWEEP_EVERY == 0 or self._deep_access.search(code):
            reasons.extend(self._sweep())
        self._adopt_new_modules()
        return "; ".join(reasons[:4]) or None

    def _sweep(self) -> list[str]:
        changed = []
        for name, (namespace, values) in self._snapshots.items():
            try:
                same = len(namespace) == len(values) and values == list(namespace.values())
            except Exception:  # an array-valued attribute was replaced: == is ambiguous
                same = False
            if not same or sys.modules.get(name) is not self._modules[name]:
                changed.append(f"module {name} changed")
        return changed

    def _adopt_new_modules(self) -> None:
        """Watch modules imported since the last check, in their state as of now."""
        if len(sys.modules) == self._seen:
            return
        self._seen = len(sys.modules)
        for name, module in list(sys.modules.items()):
            if name in self._modules or not isinstance(module, types.ModuleType):
                continue
            _watch(module)
            self._modules[name] = module
            self._snapshots[name] = (module.__dict__, list(module.__dict__.values()))



# The audit hook reads its arguments through these, never through their own (possibly the
# program's) attribute lookup, comparison or formatting methods.
_type_name = type.__dict__["__qualname__"].__get__


def _text(value: object) -> str:
    return value if type(value) is str else "?"


def _owned_by_program(target: object) -> bool:
    """A function or class the program defined itself."""
    kind = type(target)
    if kind is types.FunctionType:
        module = target.__module__
    elif issubclass(kind, type):
        module = type.__dict__["__module__"].__get__(target)
    else:
        return False
    return type(module) is str and module == PROGRAM_MODULE


def _runtime_probe():
    """A function returning the interpreter's runtime state, with everything it reads bound now."""
    getsignal, signals = signal.getsignal, tuple(signal.valid_signals())
    getitimer, timers = signal.getitimer, (signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)
    geterr, filters, getcwd, gc_enabled = np.geterr, warnings.filters, os.getcwd, gc.isenabled
    active_threads, gc_callbacks, fault_enabled = threading.active_count, gc.callbacks, faulthandler.is_enabled
    sys_module = sys

    def state() -> tuple:
        s = sys_module
        return (
            s.getrecursionlimit(), s.gettrace(), s.getprofile(), s.stdout, s.stderr, s.stdin,
            s.displayhook, s.excepthook, s.unraisablehook, tuple(s.path), tuple(s.meta_path),
            tuple(s.path_hooks), tuple(geterr().items()), tuple(filters), getcwd(), gc_enabled(),
            active_threads(), tuple(gc_callbacks), fault_enabled(),
            tuple(getsignal(n) for n in signals), tuple(getitimer(t) for t in timers),
        )
    return state


class _WatchedModule(types.ModuleType):
    """A module that reports, as an audit event, a program rebinding or deleting one of its names.

    It holds no reference to the guard: the audit hook receives the event.
    """

    def __setattr__(self, name, value, _audit=sys.audit):
        # The import system binds a freshly imported submodule on its parent: not tampering.
        if not (isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}"):
            _audit("arc_sandbox.module_changed", self.__name__, name)
        super().__setattr__(name, value)

    def __delattr__(self, name, _audit=sys.audit):
        _audit("arc_sandbox.module_changed", self.__name__, name)
        super().__delattr__(name)


def _watch(module: types.ModuleType) -> None:
    if type(module) is types.ModuleType:   # leave modules with their own class alone
        module.__class__ = _WatchedModule
