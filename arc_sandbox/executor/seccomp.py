"""A hand-built seccomp-BPF filter for sandbox workers (Linux, x86-64 and aarch64).

libseccomp's Python binding is rarely installed, so the filter is assembled here from classic
BPF instructions and installed with the ``seccomp(2)`` system call through ctypes. The filter
checks the architecture first (a 32-bit or x32 system call on x86-64 would otherwise slip past
numbers meant for the 64-bit table), then answers each listed system call:

* program execution (``execve``, ``execveat``) and process creation (``fork``, ``vfork``,
  ``clone`` without ``CLONE_THREAD``) -> ``EPERM``; ``clone3`` -> ``ENOSYS``, its flags live in
  memory the filter cannot read, and libc then falls back to ``clone`` for threads;
* ``ptrace`` and cross-process memory access -> ``EPERM``;
* signals to any process other than the worker itself (``kill`` with a pid other than 0, the
  worker's pid or its process group; ``tgkill`` to another thread group) -> ``EPERM``;
* opening a file for writing (``O_WRONLY``, ``O_RDWR``, ``O_CREAT``, ``O_TRUNC``,
  ``O_APPEND``), ``creat`` and path operations that change the file system -> ``EACCES`` /
  ``EPERM``; ``openat2`` -> ``ENOSYS`` (libraries fall back to ``openat``, which is checked);
* ``socket`` -> ``EPERM``;
* changing resource limits (``setrlimit``, ``prlimit64`` with a new value) -> ``EPERM``, except the
  process's own soft RLIMIT_CPU (below its hard cap);
* namespaces, mounts, io_uring (its requests bypass seccomp), bpf, perf events, userfaultfd and
  the kernel key ring -> ``EPERM``.

Everything else is allowed: reads (imports need them), memory management, threads, writes to
descriptors that are already open. A seccomp filter can never be removed once installed, and
it is inherited by every thread and child.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
from dataclasses import dataclass

# Classic BPF opcodes (linux/filter.h) and seccomp return actions (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_PR_SET_NO_NEW_PRIVS = 38

# Offsets into struct seccomp_data: nr, arch, instruction pointer, then six 64-bit arguments.
# Both supported architectures are little-endian: the low word of an argument comes first.
_NR = 0
_ARCH = 4


def _arg_lo(index: int) -> int:
    return 16 + 8 * index


def _arg_hi(index: int) -> int:
    return 16 + 8 * index + 4


_CLONE_THREAD = 0x00010000
# O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND (O_TMPFILE needs O_WRONLY or O_RDWR too).
_OPEN_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000


@dataclass(frozen=True)
class _Arch:
    audit_arch: int
    seccomp_nr: int
    syscalls: dict[str, int]
    x32_bit: int = 0          # syscall numbers with this bit set belong to another ABI


# Only the system calls the filter names. Numbers from the kernel's syscall tables; calls an
# architecture lacks (aarch64 has no open, fork...) are simply absent.
_COMMON_NEW = {
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "openat2": 437,
    "pidfd_getfd": 438, "mount_setattr": 442, "fchmodat2": 452,
}
_X86_64 = _Arch(0xC000003E, 317, {
    "open": 2, "socket": 41, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "kill": 62,
    "truncate": 76, "rename": 82, "mkdir": 83, "rmdir": 84, "creat": 85, "link": 86,
    "unlink": 87, "symlink": 88, "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93,
    "lchown": 94, "ptrace": 101, "rt_sigqueueinfo": 129, "mknod": 133, "setrlimit": 160,
    "chroot": 161, "mount": 165, "umount2": 166, "pivot_root": 155, "setxattr": 188,
    "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198,
    "fremovexattr": 199, "tkill": 200, "tgkill": 234, "add_key": 248, "request_key": 249,
    "keyctl": 250, "openat": 257, "mkdirat": 258, "mknodat": 259, "fchownat": 260,
    "unlinkat": 263, "renameat": 264, "linkat": 265, "symlinkat": 266, "fchmodat": 268,
    "unshare": 272, "utimensat": 280, "rt_tgsigqueueinfo": 297, "perf_event_open": 298,
    "prlimit64": 302, "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "renameat2": 316, "bpf": 321, "execveat": 322,
    "userfaultfd": 323, **_COMMON_NEW,
}, x32_bit=0x40000000)
_AARCH64 = _Arch(0xC00000B7, 277, {
    "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
    "fremovexattr": 16, "mknodat": 33, "mkdirat": 34, "unlinkat": 35, "symlinkat": 36,
    "linkat": 37, "renameat": 38, "umount2": 39, "mount": 40, "pivot_root": 41,
    "truncate": 45, "chroot": 51, "fchmod": 52, "fchmodat": 53, "fchownat": 54, "fchown": 55,
    "openat": 56, "utimensat": 88, "unshare": 97, "ptrace": 117, "kill": 129, "tkill": 130,
    "tgkill": 131, "rt_sigqueueinfo": 138, "setrlimit": 164, "socket": 198,
    "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220, "execve": 221,
    "rt_tgsigqueueinfo": 240, "perf_event_open": 241, "prlimit64": 261,
    "open_by_handle_at": 265, "setns": 268, "process_vm_readv": 270,
    "process_vm_writev": 271, "renameat2": 276, "bpf": 280, "execveat": 281,
    "userfaultfd": 282, **_COMMON_NEW,
})
_ARCHES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}

# System calls refused outright, with the errno the program sees.
_DENIED = {
    errno.EPERM: (
        "execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv",
        "process_vm_writev", "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
        "pidfd_send_signal", "pidfd_getfd", "socket", "setrlimit", "unshare", "setns", "mount",
        "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig",
        "fsmount", "fspick", "mount_setattr", "io_uring_setup", "io_uring_enter",
        "io_uring_register", "bpf", "perf_event_open", "userfaultfd", "add_key",
        "request_key", "keyctl", "open_by_handle_at",
    ),
    errno.EACCES: (
        "creat", "truncate", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir",
        "unlink", "unlinkat", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod",
        "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "mknod", "mknodat",
        "utimensat", "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr",
        "fremovexattr",
    ),
    errno.ENOSYS: ("clone3", "openat2"),
}


class SeccompUnavailable(OSError):
    """This host or architecture cannot take the filter."""


class _sock_filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _sock_fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_sock_filter))]


Insn = tuple[int, int, int, int]


def _ld(offset: int) -> Insn:
    return (_LD_W_ABS, 0, 0, offset)


def _ret(action: int) -> Insn:
    return (_RET_K, 0, 0, action)


def _errno(code: int) -> Insn:
    return _ret(_RET_ERRNO | code)


def _allow_if_arg_in(arg: int, values: list[int], else_errno: int) -> list[Insn]:
    """Allow when the low word of argument ``arg`` is one of ``values`` (32-bit arguments)."""
    block = [_ld(_arg_lo(arg))]
    for i, value in enumerate(values):
        block.append((_JEQ_K, len(values) - i, 0, value & 0xFFFFFFFF))   # jump to ALLOW
    return block + [_errno(else_errno), _ret(_RET_ALLOW)]


def _deny_if_flags(arg: int, mask: int, code: int) -> list[Insn]:
    return [_ld(_arg_lo(arg)), (_JSET_K, 0, 1, mask), _errno(code), _ret(_RET_ALLOW)]


def _allow_only_threads() -> list[Insn]:
    return [_ld(_arg_lo(0)), (_JSET_K, 1, 0, _CLONE_THREAD), _errno(errno.EPERM),
            _ret(_RET_ALLOW)]


def _allow_only_reading_limits() -> list[Insn]:
    """prlimit64(pid, resource, new, old): allowed with new == NULL (a 64-bit pointer), or on this
    process's own RLIMIT_CPU: the worker sets a CPU budget per program, under a hard cap it
    cannot raise (no CAP_SYS_RESOURCE after the privilege drop)."""
    return [_ld(_arg_lo(2)), (_JEQ_K, 0, 2, 0), _ld(_arg_hi(2)), (_JEQ_K, 5, 0, 0),
            _ld(_arg_lo(1)), (_JEQ_K, 0, 2, resource.RLIMIT_CPU), _ld(_arg_lo(0)), (_JEQ_K, 1, 0, 0),
            _errno(errno.EPERM), _ret(_RET_ALLOW)]


def _rules(arch: _Arch, pid: int) -> list[tuple[str, list[Insn]]]:
    # kill(pid, sig) may target the worker itself, and its process group when it leads one
    # (the worker calls setsid; with fork refused nobody else can be in that group).
    own = [pid, 0, -pid] if os.getpgid(0) == pid else [pid]
    rules = [(name, [_errno(code)]) for code, names in _DENIED.items() for name in names]
    rules += [
        ("clone", _allow_only_threads()),
        ("kill", _allow_if_arg_in(0, own, errno.EPERM)),
        ("tgkill", _allow_if_arg_in(0, [pid], errno.EPERM)),      # raise(), pthread_kill()
        ("open", _deny_if_flags(1, _OPEN_WRITE_FLAGS, errno.EACCES)),
        ("openat", _deny_if_flags(2, _OPEN_WRITE_FLAGS, errno.EACCES)),
        ("prlimit64", _allow_only_reading_limits()),
    ]
    return [(name, block) for name, block in rules if name in arch.syscalls]


def build_filter(pid: int, machine: str | None = None) -> list[Insn]:
    """The filter program for the calling process, whose pid is ``pid``, as (code, jt, jf, k)."""
    arch = _ARCHES.get((machine or platform.machine()).lower())
    if arch is None:
        raise SeccompUnavailable(f"no system call table for architecture {machine or platform.machine()!r}")
    program = [_ld(_ARCH), (_JEQ_K, 1, 0, arch.audit_arch), _ret(_RET_KILL_PROCESS), _ld(_NR)]
    if arch.x32_bit:
        program += [(_JGE_K, 0, 1, arch.x32_bit), _errno(errno.ENOSYS)]
    # Each rule: "if nr == N: <block>", the block ends in a return on every path, so the
    # accumulator still holds nr whenever the next comparison runs.
    for name, block in _rules(arch, pid):
        if len(block) > 255:
            raise ValueError(f"seccomp rule for {name} too long for a BPF jump")
        program.append((_JEQ_K, 0, len(block), arch.syscalls[name]))
        program += block
    program.append(_ret(_RET_ALLOW))
    return program


def install_filter(pid: int | None = None) -> int:
    """Install the filter on every thread of this process; returns the number of instructions.

    Requires ``no_new_privs`` (set here) unless the caller has CAP_SYS_ADMIN. Irreversible.
    """
    pid = os.getpid() if pid is None else pid
    program = build_filter(pid)
    arch = _ARCHES[platform.machine().lower()]
    insns = (_sock_filter * len(program))(*[_sock_filter(*insn) for insn in program])
    prog = _sock_fprog(len(program), insns)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SeccompUnavailable(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    result = libc.syscall(ctypes.c_long(arch.seccomp_nr), ctypes.c_ulong(_SECCOMP_SET_MODE_FILTER),
                          ctypes.c_ulong(_SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(prog))
    if result != 0:
        err = ctypes.get_errno()
        reason = os.strerror(err) if result < 0 else f"thread {result} could not be synchronised"
        raise SeccompUnavailable(err, f"seccomp(SET_MODE_FILTER): {reason}")
    return len(program)
