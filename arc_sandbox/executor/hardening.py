"""Isolation layers applied once in each worker: no files, no network, no processes, no secrets.

A worker runs program after program in its own process, so the layers are applied once, after
the worker's imports and resource limits and before its first program (see ``worker.serve``).
Every layer is tried, and each one the host cannot provide is reported, never silently skipped;
``Isolation(require=...)`` turns a missing layer into an error. See docs/security.md.

Order matters: the steps that need root or write access (namespaces, the working directory,
dropping privileges) come first, the seccomp filter, which forbids them, comes last.
"""
from __future__ import annotations

import ctypes
import enum
import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterable

from . import seccomp


class Layer(str, enum.Enum):
    NO_NEW_PRIVS = "no_new_privs"        # setuid binaries and file capabilities give nothing
    NETWORK = "network"                  # an empty network namespace: no interface, no route
    SECCOMP = "seccomp"                  # no exec, fork, ptrace, signals to others, writes, sockets
    RLIMITS = "rlimits"                  # FSIZE 0, NOFILE small, CORE 0, NPROC; hard limits locked
    DROP_PRIVILEGES = "drop_privileges"  # never run programs as root
    ENVIRONMENT = "environment"          # only an allow-list of environment variables
    WORKDIR = "workdir"                  # a fresh, empty, read-only working directory
    REAPER = "reaper"                    # the worker adopts and kills its descendants

    def __str__(self) -> str:
        return self.value


ALL_LAYERS = frozenset(Layer)
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")   # what programs see (Isolation.keep_env)
# What the template process starts with (besides THREAD_ENV): the caller's secrets never reach it.
TEMPLATE_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME", "PYTHONPATH")
THREAD_ENV = {var: "1" for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                   "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
_WORKDIR_PREFIX = "arc-sandbox-"

_PR_SET_PDEATHSIG, _PR_GET_PDEATHSIG = 1, 2
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
_MNT_DETACH = 2


class IsolationError(RuntimeError):
    """A layer the caller required is not available on this host."""


def _as_layers(values: Iterable, option: str) -> frozenset[Layer]:
    if isinstance(values, (str, Layer)):
        values = [values]
    try:
        return frozenset(Layer(v) for v in values)
    except ValueError as exc:
        names = ", ".join(layer.value for layer in Layer)
        raise ValueError(f"Isolation.{option}: {exc} (known layers: {names})") from None


@dataclass(frozen=True)
class Isolation:
    """Which isolation layers workers apply, and which must be present.

    ``Isolation()`` tries every layer and reports the ones this host lacks;
    ``Isolation(require={"seccomp", "network"})`` (or ``Isolation.strict()``) makes their
    absence an error when the Sandbox starts; ``Isolation.off()`` applies none (benchmarks).
    """

    layers: frozenset[Layer] = ALL_LAYERS
    require: frozenset[Layer] = frozenset()
    user: str | int = "nobody"          # who programs run as when the worker starts as root
    max_open_files: int = 64            # RLIMIT_NOFILE (raised above the fds the worker holds)
    keep_env: tuple[str, ...] = KEPT_ENV

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", _as_layers(self.layers, "layers"))
        object.__setattr__(self, "require", _as_layers(self.require, "require"))
        object.__setattr__(self, "keep_env", tuple(self.keep_env))
        if not self.require <= self.layers:
            extra = ", ".join(sorted(layer.value for layer in self.require - self.layers))
            raise ValueError(f"Isolation.require names layers that are switched off: {extra}")
        if not isinstance(self.max_open_files, int) or self.max_open_files < 16:
            raise ValueError(f"Isolation.max_open_files must be an integer >= 16, got {self.max_open_files!r}")
        if not isinstance(self.user, (str, int)) or isinstance(self.user, bool):
            raise ValueError(f"Isolation.user must be a user name or uid, got {self.user!r}")

    @classmethod
    def off(cls) -> "Isolation":
        return cls(layers=frozenset())

    @classmethod
    def strict(cls) -> "Isolation":
        return cls(require=ALL_LAYERS)

    def to_dict(self) -> dict:
        """JSON-ready form, sent to the template with each spawn request."""
        return {"layers": sorted(self.layers), "require": sorted(self.require), "user": self.user,
                "max_open_files": self.max_open_files, "keep_env": list(self.keep_env)}

    @classmethod
    def from_dict(cls, data: dict | None) -> "Isolation":
        return cls() if data is None else cls(**data)


@dataclass(frozen=True)
class LayerStatus:
    layer: Layer
    active: bool
    detail: str          # what the layer does here, or why it is missing

    def to_dict(self) -> dict:
        return {"layer": self.layer.value, "active": self.active, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict) -> "LayerStatus":
        return cls(Layer(data["layer"]), bool(data["active"]), str(data["detail"]))

    def __str__(self) -> str:
        return f"{self.layer.value}: {'on' if self.active else 'MISSING'} ({self.detail})"


SWITCHED_OFF = "switched off"


def missing(statuses: Iterable[LayerStatus]) -> list[LayerStatus]:
    """Layers that were asked for but could not be applied (not those switched off)."""
    return [s for s in statuses if not s.active and s.detail != SWITCHED_OFF]


def check_required(policy: Isolation, statuses: Iterable[LayerStatus]) -> None:
    """Raise IsolationError when a required layer is missing."""
    absent = [s for s in missing(statuses) if s.layer in policy.require]
    if absent:
        raise IsolationError("required isolation layers are missing on this host: "
                             + "; ".join(str(s) for s in absent))


def summary(statuses: Iterable[LayerStatus]) -> str:
    """One log line: what is on, what is missing and why."""
    statuses = list(statuses)
    on = ", ".join(s.layer.value for s in statuses if s.active) or "none"
    absent = "; ".join(f"{s.layer.value} ({s.detail})" for s in missing(statuses))
    off = ", ".join(s.layer.value for s in statuses if s.detail == SWITCHED_OFF)
    return (f"isolation layers on: {on}" + (f"; missing: {absent}" if absent else "")
            + (f"; switched off: {off}" if off else ""))


# -- in the worker ---------------------------------------------------------------------------
def harden_current_process(policy: Isolation | dict | None = None) -> list[LayerStatus]:
    """Apply the policy's layers to this process (irreversibly) and report each one.

    Call once, in a single-threaded worker that has done its imports, opened the files it
    needs and set its memory limit, and that leads its own session (``os.setsid()``).
    Never raises for a missing layer: the caller checks the report (``check_required``).
    """
    if not isinstance(policy, Isolation):
        policy = Isolation.from_dict(policy)
    steps = [
        (Layer.WORKDIR, _enter_workdir),
        (Layer.ENVIRONMENT, _scrub_environment),
        (Layer.NETWORK, _isolate_network),
        (Layer.REAPER, _become_subreaper),
        (Layer.DROP_PRIVILEGES, _drop_privileges),
        (Layer.RLIMITS, _limit_resources),
        (Layer.NO_NEW_PRIVS, _no_new_privs),
        (Layer.SECCOMP, _install_seccomp),
    ]
    statuses = []
    for layer, apply in steps:
        if layer not in policy.layers:
            statuses.append(LayerStatus(layer, False, SWITCHED_OFF))
            continue
        try:
            statuses.append(LayerStatus(layer, True, apply(policy)))
        except (OSError, ValueError, KeyError) as exc:
            statuses.append(LayerStatus(layer, False, _reason(exc)))
    if Layer.SECCOMP in policy.layers and not statuses[-1].active and Layer.RLIMITS in policy.layers:
        statuses[-1] = LayerStatus(Layer.SECCOMP, False, statuses[-1].detail + "; " + _limit_processes())
    return statuses


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno and not exc.args[1:]:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def workdir_root(template_pid: int) -> str:
    """Where the workers of one template keep their working directories."""
    return os.path.join(tempfile.gettempdir(), f"{_WORKDIR_PREFIX}{template_pid}")


def _enter_workdir(policy: Isolation) -> str:
    root = workdir_root(os.getppid())
    try:
        os.mkdir(root, 0o711)
    except FileExistsError:
        pass
    info = os.lstat(root)   # someone else's directory or a symlink planted in /tmp: refuse it
    if info.st_uid != os.geteuid() or not os.path.isdir(root) or os.path.islink(root):
        raise OSError(f"{root} is not a directory owned by this user")
    path = os.path.join(root, str(os.getpid()))
    os.mkdir(path, 0o700)
    os.chdir(path)
    os.chmod(path, 0o555)   # read-only, even for a program that escapes the other layers
    return f"{path}, empty and read-only, removed when the worker ends"


def remove_workdir(worker_pid: int) -> None:
    """Called by the template when a worker has exited (whatever killed it)."""
    shutil.rmtree(os.path.join(workdir_root(os.getpid()), str(worker_pid)), ignore_errors=True)


def remove_workdirs(template_pid: int | None = None) -> None:
    """Called by the template when it stops, and by the Sandbox after the template is gone."""
    shutil.rmtree(workdir_root(template_pid or os.getpid()), ignore_errors=True)


def _scrub_environment(policy: Isolation) -> str:
    kept = {k: os.environ[k] for k in policy.keep_env if k in os.environ}
    kept.update(THREAD_ENV)
    os.environ.clear()
    os.environ.update(kept)
    _wipe_initial_environment()
    return f"{len(kept)} variables ({', '.join(sorted(kept))}); /proc/self/environ wiped"


def _wipe_initial_environment() -> None:
    """Zero the environment block the process was started with (what /proc/self/environ shows).

    After ``os.environ.clear()`` libc's ``environ`` no longer points into it; the strings stay
    in memory, though, and a program could read them there or through /proc/self/environ.
    """
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[47]), int(fields[48])   # env_start, env_end (fields 50 and 51)
    if 0 < start < end:
        ctypes.memset(start, 0, end - start)


def _isolate_network(policy: Isolation) -> str:
    libc = _libc()
    if os.geteuid() == 0:
        _check(libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        return "empty network namespace"
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET), "unshare(CLONE_NEWUSER|CLONE_NEWNET)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _drop_all_capabilities()   # the new user namespace granted them; programs need none
    return "empty network namespace (in a user namespace)"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_all_capabilities() -> None:
    header = _CapHeader(0x20080522, 0)   # _LINUX_CAPABILITY_VERSION_3: two data words
    data = (_CapData * 2)()
    _check(_libc().capset(ctypes.byref(header), data), "capset")


def _become_subreaper(policy: Isolation) -> str:
    become_subreaper()
    return "orphaned descendants come back to the worker, which kills them after each program"


def become_subreaper() -> None:
    """Orphans in this process's subtree re-parent to it instead of to init."""
    _check(_libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def _drop_privileges(policy: Isolation) -> str:
    if os.geteuid() != 0:
        return f"not root (uid {os.geteuid()})"
    if isinstance(policy.user, int):
        uid = gid = policy.user
    else:
        entry = pwd.getpwnam(policy.user)
        uid, gid = entry.pw_uid, entry.pw_gid
    if uid == 0:
        raise ValueError("Isolation.user is root")
    exposed = _expose_import_paths()
    libc, death_signal = _libc(), ctypes.c_int(0)
    libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(death_signal), 0, 0, 0)
    parent = os.getppid()
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # Changing credentials clears the parent-death signal: arm it again, and die now if the
    # parent went away in between.
    if death_signal.value:
        _check(libc.prctl(_PR_SET_PDEATHSIG, death_signal.value, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != parent:
            os._exit(0)
    shown = f"; in a mount namespace, {', '.join(exposed)} hidden except the Python paths" if exposed else ""
    return f"running as uid {uid}, gid {gid}{shown}"


def _import_paths() -> list[str]:
    """Directories a program's imports may still need (lazy imports happen after the drop)."""
    paths = [os.path.realpath(p) for p in (*sys.path, sys.prefix, sys.exec_prefix, sys.base_prefix) if p]
    paths = sorted({p for p in paths if os.path.isdir(p)})
    return [p for p in paths if not any(p.startswith(q + os.sep) for q in paths)]


def _closed_ancestor(path: str) -> str | None:
    """The topmost ancestor of ``path`` that other users cannot traverse (None if all can)."""
    parts = path.strip(os.sep).split(os.sep)
    for i in range(1, len(parts) + 1):
        ancestor = os.sep + os.path.join(*parts[:i])
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def _expose_import_paths() -> list[str]:
    """Make Python's own directories reachable for the unprivileged user, and nothing else.

    Python is often installed under /root (pyenv, conda), which other users cannot enter; after
    the drop every lazy import would fail. In a private mount namespace each such directory is
    covered with an empty tmpfs and only the Python paths inside it are bind-mounted back:
    the rest (keys, tokens, caches) disappears from the program's view. Needs root.
    """
    paths = _import_paths()
    closed = sorted({a for a in map(_closed_ancestor, paths) if a})
    if not closed:
        return []
    libc = _libc()
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount(/, MS_PRIVATE)")
    stash = tempfile.mkdtemp(prefix=_WORKDIR_PREFIX + "stash-")
    moved = [p for p in paths if any(p.startswith(c + os.sep) or p == c for c in closed)]
    for i, path in enumerate(moved):
        os.mkdir(os.path.join(stash, str(i)))
        _mount_bind(path, os.path.join(stash, str(i)))
    for ancestor in closed:
        _check(libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                          b"mode=0755,size=64k"), f"mount tmpfs on {ancestor}")
    for i, path in enumerate(moved):
        os.makedirs(path, 0o755, exist_ok=True)
        _mount_bind(os.path.join(stash, str(i)), path)
        _check(libc.umount2(os.path.join(stash, str(i)).encode(), _MNT_DETACH), "umount2")
    shutil.rmtree(stash)
    return closed


def _mount_bind(source: str, target: str) -> None:
    _check(_libc().mount(source.encode(), target.encode(), None, _MS_BIND | _MS_REC, None),
           f"bind-mount {source} on {target}")


def _limit_resources(policy: Isolation) -> str:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past FSIZE fails with EFBIG instead
    highest_fd = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    limits = {
        resource.RLIMIT_FSIZE: 0,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: max(policy.max_open_files, highest_fd + 16),
    }
    for res, value in limits.items():
        resource.setrlimit(res, (value, value))
    # Lock every limit: a soft limit below its hard limit could be raised back by the program.
    for name in ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_STACK", "RLIMIT_RSS",
                 "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_SIGPENDING"):
        res = getattr(resource, name)
        soft, hard = resource.getrlimit(res)
        if soft != hard:
            resource.setrlimit(res, (soft, soft))
    shown = ", ".join(f"{_RLIMIT_NAMES[r]}={v}" for r, v in limits.items())
    if Layer.SECCOMP not in policy.layers:
        shown += "; " + _limit_processes()
    return shown + "; hard limits locked"


_RLIMIT_NAMES = {resource.RLIMIT_FSIZE: "FSIZE", resource.RLIMIT_CORE: "CORE",
                 resource.RLIMIT_NOFILE: "NOFILE"}


def _limit_processes() -> str:
    """RLIMIT_NPROC=1: the stand-in for seccomp's fork ban, at the price of threads.

    The limit counts every process and thread of the user, not of the tree, so 1 refuses any
    new one to this worker; root ignores it (hence the drop to an unprivileged user first).
    """
    if os.geteuid() == 0:
        return "RLIMIT_NPROC not applied (root ignores it)"
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
    return "RLIMIT_NPROC=1 (no new processes, nor threads)"


def _no_new_privs(policy: Isolation) -> str:
    _check(_libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    return "set"


def _install_seccomp(policy: Isolation) -> str:
    n = seccomp.install_filter(os.getpid())
    return (f"{n}-instruction filter: no exec, fork, ptrace, socket, signals to other processes, "
            "writes or limit raises")


# -- processes a program leaves behind ---------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                kids.extend(int(k) for k in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def reap_descendants(max_rounds: int = 1000) -> list[int]:
    """Kill and reap every descendant of this process; return their pids (usually none).

    Needs the REAPER layer: a killed child's own children re-parent to us and are caught in
    the next round, so a detached (setsid) grandchild cannot slip away. Costs one small /proc
    read when there is nothing to do.
    """
    killed: list[int] = []
    for _ in range(max_rounds):
        kids = _children(os.getpid())
        if not kids:
            break
        for pid in kids:
            _kill(pid)
            if pid not in killed:
                killed.append(pid)
        for pid in kids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return killed


def kill_strays(known: Iterable[int]) -> list[int]:
    """In a subreaper parent (the template): kill every child that is not in ``known``.

    A worker that dies while a program's detached process still runs hands that process to
    the template; this finds it. Its exit is then reaped by the caller's normal wait loop.
    """
    known = set(known)
    strays = [pid for pid in _children(os.getpid()) if pid not in known]
    for pid in strays:
        _kill(pid)
    return strays


def kill_group(pid: int) -> None:
    """SIGKILL a process group (a worker's, the template's); gone already is fine."""
    if pid > 0:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- probing (the `doctor` command shows it: cli/doctor.py) --------------------------------------
def probe(policy: Isolation | None = None) -> list[LayerStatus]:
    """Which layers this host provides, tried in a throw-away interpreter."""
    policy = policy or Isolation()
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *filter(None, sys.path)])}
    code = ("import json, os, sys; from arc_sandbox.executor import hardening as h; os.setsid(); "
            "s = h.harden_current_process(h.Isolation.from_dict(json.loads(sys.argv[1]))); "
            "print(json.dumps([x.to_dict() for x in s]))")
    data = policy.to_dict() | {"require": []}
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(data)], env=env, cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        remove_workdir(proc.pid)
        _rmdir_quietly(workdir_root(os.getpid()))
    if proc.returncode != 0:
        raise IsolationError(f"the isolation probe failed: {err.strip()[-2000:]}")
    return [LayerStatus.from_dict(d) for d in json.loads(out)]


def _rmdir_quietly(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass   # still in use by a template's workers, or already gone
