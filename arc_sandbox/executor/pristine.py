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

import _signal
import builtins
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


class Guard:
    """Installed once per worker after preloading; ``check`` after each program.

    The worker takes the guard's operations once, before any program (``operations``), and
    calls only those: replacing ``Guard.check`` on the class later changes nothing.
    """

    def __init__(self, exempt: tuple[object, ...] = (), cpu_cap_s: int | None = None,
                 trusted_frames: tuple[types.CodeType, ...] = ()) -> None:
        self._flags = [False, False, False]   # armed, trusted (the worker reads frames), marked
        self._notes: list[str] = []
        self._count = 0
        self._modules: dict[str, types.ModuleType] = {}
        self._seen = -1   # len(sys.modules) at the last adoption
        self._snapshots: dict[str, tuple[dict, list]] = {}
        self._always: list[tuple[str, object, list]] = []   # the sandbox's own namespaces: every check
        self._deep_access, self._sweep_every, self._watched_class = _DEEP_ACCESS, SWEEP_EVERY, _WatchedModule
        self._watch_hooks = (_WatchedModule.__dict__["__setattr__"], _WatchedModule.__dict__["__delattr__"])
        self._cancel_dumps = faulthandler.cancel_dump_traceback_later
        self._state = _runtime_probe()
        self._sweep, self._adopt, self._replaced = self._sweep_modules, self._adopt_new_modules, self._replaced_modules
        self._adopt()
        self._always = _own_namespaces()
        self._runtime = self._state()
        self._builtins = dict(builtins.__dict__)
        self._builtin_values = list(self._builtins.values())
        sys.addaudithook(_audit_hook(self._flags, self._notes, exempt, trusted_frames, cpu_cap_s))

    def operations(self):
        """(arm, disarm, trust, heal_builtins, check), bound now, for the worker to keep."""
        flags = self._flags

        def arm() -> None:
            flags[0] = True

        def disarm() -> None:
            flags[0] = False

        def trust(on: bool) -> None:
            """The worker reads a traceback's frames itself: no program code runs meanwhile."""
            flags[1] = on

        return arm, disarm, trust, self.heal_builtins, self.check

    def heal_builtins(self, _len=len, _list=list) -> None:
        """Put builtins back at once: the worker's own bookkeeping needs a working ``len``."""
        namespace = self._builtins_namespace
        if _len(namespace) != _len(self._builtins) or _list(namespace.values()) != self._builtin_values:
            namespace.clear()
            namespace.update(self._builtins)
            self._notes.append("builtins changed")

    _builtins_namespace = builtins.__dict__

    # -- the check ----------------------------------------------------------------------
    def check(self, code: str, _len=len) -> str | None:
        """Return why the world is no longer pristine, or None. Resets the notes."""
        self._count += 1
        reasons = self._notes[:4]
        self._notes.clear()
        self._cancel_dumps()   # a faulthandler dump armed by the program would write during the next one
        if self._flags[2] and not reasons:
            reasons.append("the program reached the worker's internals and erased the guard's notes")
        if self._state() != self._runtime:
            reasons.append("interpreter state changed (recursion limit, stdio, sys.path, numpy errstate, "
                           "warnings filters, cwd, threads, signal handlers, timers or gc callbacks)")
        watched = self._watched_class.__dict__
        if (watched.get("__setattr__"), watched.get("__delattr__")) != self._watch_hooks:
            reasons.append("the module watch was replaced")
        reasons.extend(self._sweep(self._always))
        if self._count % self._sweep_every == 0 or self._deep_access.search(code):
            reasons.extend(self._sweep(self._snapshots.items()))
            reasons.extend(self._replaced())
        self._adopt()
        return "; ".join(reasons[:4]) or None

    def _sweep_modules(self, namespaces, _len=len, _list=list, _exception=Exception) -> list[str]:
        changed = []
        for name, (namespace, values) in namespaces:
            try:
                same = _len(namespace) == _len(values) and values == _list(namespace.values())
            except _exception:  # an array-valued attribute was replaced: == is ambiguous
                same = False
            if not same:
                changed.append(f"{name} changed")
        return changed

    def _replaced_modules(self, _modules=sys.modules) -> list[str]:
        return [f"module {name} replaced in sys.modules" for name, module in self._modules.items()
                if _modules.get(name) is not module]

    def _adopt_new_modules(self, _modules=sys.modules, _len=len, _list=list, _isinstance=isinstance) -> None:
        """Watch modules imported since the last check, in their state as of now."""
        if _len(_modules) == self._seen:
            return
        self._seen = _len(_modules)
        for name, module in _list(_modules.items()):
            if name in self._modules or not _isinstance(module, types.ModuleType):
                continue
            _watch(module)
            self._modules[name] = module
            self._snapshots[f"module {name}"] = (module.__dict__, _list(module.__dict__.values()))


# The worker's own machinery: small namespaces, swept after every program (a program could
# rebind ``Reply.to_bytes`` or write into ``worker.__dict__`` without any audit event).
_OWN_MODULES = ("worker", "wire", "pristine")
_OWN_CLASSES = ("Reply", "Request", "_Run", "_BoundedWriter", "MemoryProbe", "Guard", "_WatchedModule")


def _own_namespaces() -> list[tuple[str, tuple[object, list]]]:
    spaces = []
    for name in (f"arc_sandbox.executor.{m}" for m in _OWN_MODULES):
        module = sys.modules.get(name)
        if module is None:
            continue
        spaces.append((f"module {name}", (module.__dict__, list(module.__dict__.values()))))
        for value in list(module.__dict__.values()):
            if isinstance(value, type) and value.__module__ == name and value.__name__ in _OWN_CLASSES:
                spaces.append((f"class {name}.{value.__qualname__}", (value.__dict__, list(value.__dict__.values()))))
    return spaces


def _audit_hook(flags: list, notes: list, exempt: tuple, trusted_frames: tuple, cpu_cap: int | None, *,
                _type=type, _str=str, _len=len, _min=min, _issubclass=issubclass, _frame=types.FrameType,
                _function=types.FunctionType, _module_of=type.__dict__["__module__"].__get__,
                _type_name=type.__dict__["__qualname__"].__get__, _getrlimit=resource.getrlimit,
                _setrlimit=resource.setrlimit, _errors=(ValueError, OSError), _tainting=_TAINTING_EVENTS,
                _frame_attributes=_FRAME_ATTRIBUTES, _program=PROGRAM_MODULE, _cpu=resource.RLIMIT_CPU):
    """The audit hook. It runs inside whatever raised the event, the program included, so it
    reads no global or builtin name (a program can rebind those), calls no method of the
    event's arguments (they may be the program's objects), and writes every note where no
    program can erase it: the hard RLIMIT_CPU, lowered by a second, which the parent reads."""

    def text(value) -> str:
        return value if _type(value) is _str else "?"

    def owned_by_program(target) -> bool:
        kind = _type(target)
        if kind is _function:
            module = target.__module__
        elif _issubclass(kind, _type):
            module = _module_of(target)
        else:
            return False
        return _type(module) is _str and module == _program

    def note(reason: str) -> None:
        if _len(notes) < 8:
            notes.append(reason)
        if not flags[2]:
            flags[2] = True
            if not cpu_cap:
                return
            try:
                soft, _ = _getrlimit(_cpu)
                mark = cpu_cap - 1
                _setrlimit(_cpu, (mark if soft < 0 else _min(soft, mark), mark))
            except _errors:
                pass

    def hook(event: str, args: tuple) -> None:
        if not flags[0]:
            return
        if event == "object.__setattr__" or event == "object.__delattr__":
            target = args[0]
            for e in exempt:
                if target is e:
                    return
            if not owned_by_program(target):
                note(f"{event} {text(args[1])} of a {_type_name(_type(target))}")
        elif event == "object.__getattr__":
            if not flags[1] and _type(args[1]) is _str and args[1] in _frame_attributes:
                note(f"read {args[1]} (a frame)")
        elif event == "sys._getframe":
            frame = args[0] if _len(args) else None
            if not flags[1] and _type(frame) is _frame:
                code = frame.f_code
                for trusted in trusted_frames:
                    if code is trusted:
                        return
            if not flags[1]:
                note("sys._getframe")
        elif event == "arc_sandbox.module_changed" and _len(args) == 2:
            note(f"set {text(args[0])}.{text(args[1])}")
        elif event in _tainting or event.startswith("ctypes."):
            note(f"audited event {event}")

    return hook


def _runtime_probe():
    """A function returning the interpreter's runtime state, with everything it reads bound now."""
    # the signals that can reach a worker: its timers, the kernel's, and what it may send itself
    getsignal = _signal.getsignal   # the C function: signal.getsignal's enum conversion costs 3 us a call
    signals = tuple(int(s) for s in (signal.SIGALRM, signal.SIGXCPU, signal.SIGVTALRM, signal.SIGPROF,
                                     signal.SIGPIPE, signal.SIGIO, signal.SIGURG, signal.SIGCHLD,
                                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT))
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
