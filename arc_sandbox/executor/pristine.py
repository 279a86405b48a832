"""Proving that a persistent worker's world is still pristine after a program.

Workers are reused (forking per program costs 10x more than running a typical one), so
each program must leave no trace for the next. Three cheap nets, checked after every
program; any catch retires the worker (the parent starts a fresh one from the template):

1. Every module's class is swapped for one that notes ``module.attr = ...`` and ``del``.
2. An audit hook notes the rare events that reach past normal attributes (class
   attribute writes outside the program, ctypes, gc referrers, fork/exec, chdir...).
3. A small tuple of runtime state (recursion limit, trace hooks, stdio, sys.path,
   numpy error mode, warnings filters, cwd, threads, signal handlers) is compared.

Writes straight into a module ``__dict__`` bypass (1); they need names such as
``__dict__``, ``vars(``, ``setattr`` or ``sys`` in the source, so such programs (and every
``SWEEP_EVERY``-th program) also get a full sweep of every module's namespace (~0.3 ms).
"""
from __future__ import annotations

import builtins
import gc
import os
import re
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
})


class Guard:
    """Installed once per worker after preloading; ``check`` after each program."""

    def __init__(self, exempt: tuple[object, ...] = ()) -> None:
        self._exempt = exempt        # objects reset by other means (common.Color)
        self._notes: list[str] = []
        self._armed = False
        self._count = 0
        self._modules: dict[str, types.ModuleType] = {}
        self._seen = -1   # len(sys.modules) at the last adoption
        self._snapshots: dict[str, tuple[dict, list]] = {}
        self._adopt_new_modules()
        self._runtime = self._runtime_state()
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

    def note(self, reason: str) -> None:
        if self._armed and len(self._notes) < 8:
            self._notes.append(reason)

    def _audit(self, event: str, args: tuple) -> None:
        if not self._armed:
            return
        if event in ("object.__setattr__", "object.__delattr__"):
            target = args[0]
            if target in self._exempt or getattr(target, "__module__", None) == PROGRAM_MODULE:
                return
            self.note(f"set attribute {args[1]!r} of {getattr(target, '__qualname__', type(target).__name__)}")
        elif event in _TAINTING_EVENTS or event.startswith("ctypes."):
            self.note(f"audited event {event}")

    # -- the check ----------------------------------------------------------------------
    def check(self, code: str) -> str | None:
        """Return why the world is no longer pristine, or None. Resets the notes."""
        self._count += 1
        reasons, self._notes = self._notes, []
        if self._runtime_state() != self._runtime:
            reasons.append("interpreter state changed (recursion limit, stdio, sys.path, numpy errstate, "
                           "warnings filters, cwd, threads or signal handlers)")
        if self._count % SWEEP_EVERY == 0 or _DEEP_ACCESS.search(code):
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
            _watch(module, self)
            self._modules[name] = module
            self._snapshots[name] = (module.__dict__, list(module.__dict__.values()))

    @staticmethod
    def _runtime_state() -> tuple:
        return (
            sys.getrecursionlimit(), sys.gettrace(), sys.getprofile(), sys.stdout, sys.stderr, sys.stdin,
            sys.displayhook, sys.excepthook, tuple(sys.path), tuple(sys.meta_path), tuple(sys.path_hooks),
            tuple(np.geterr().items()), tuple(warnings.filters), os.getcwd(), gc.isenabled(),
            threading.active_count(), signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGXCPU),
        )


class _WatchedModule(types.ModuleType):
    """A module that tells its guard when a program rebinds or deletes one of its names."""

    def __setattr__(self, name, value):
        # The import system binds a freshly imported submodule on its parent: not tampering.
        if not (isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}"):
            _GUARDS[0].note(f"set {self.__name__}.{name}")
        super().__setattr__(name, value)

    def __delattr__(self, name):
        _GUARDS[0].note(f"deleted {self.__name__}.{name}")
        super().__delattr__(name)


_GUARDS: list[Guard] = []


def _watch(module: types.ModuleType, guard: Guard) -> None:
    if not _GUARDS:
        _GUARDS.append(guard)
    if type(module) is types.ModuleType:   # leave modules with their own class alone
        module.__class__ = _WatchedModule
