"""The template: a small, single-threaded process that forks workers on request.

Started by the Sandbox as a fresh interpreter (``python -m arc_sandbox.executor.template FD``) with a
scrubbed environment, so workers never fork from the caller (which may hold torch, CUDA or
threads) and inherit none of its secrets. It preloads numpy, scipy.ndimage and ``common``
once; a fork from it costs a few milliseconds and shares those pages.

Protocol on the control socket (SOCK_SEQPACKET, one JSON message per packet):
  parent -> template: {"op": "spawn", "tag": T, "limits": {...}} with the worker's socket fd
                      attached; {"op": "shutdown"}
  template -> parent: {"op": "ready", "pid": P}; {"op": "spawned", "tag": T, "pid": P};
                      {"op": "exited", "pid": P, "status": S, "maxrss_kb": K, "cpu_s": C}
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys

from arc_sandbox.executor.hardening import become_subreaper, kill_group, kill_strays, remove_workdir, remove_workdirs

PRELOAD = (
    "numpy", "scipy.ndimage", "collections", "itertools", "functools", "typing", "copy", "math",
    "heapq", "random", "re", "string", "operator", "dataclasses", "enum", "statistics", "fractions",
    "bisect", "arc_sandbox.dsl.common", "arc_sandbox.executor.worker",
)


def main(ctrl_fd: int) -> None:
    ctrl = socket.socket(fileno=ctrl_fd)
    import gc
    import importlib
    for name in PRELOAD:
        importlib.import_module(name)
    sys.modules["common"] = sys.modules["arc_sandbox.dsl.common"]
    gc.collect()
    gc.freeze()   # preloaded objects stay out of the children's collections: fewer copied pages
    become_subreaper()   # a dead worker's leftover processes come here, to be killed in _reap
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _send(ctrl, op="ready", pid=os.getpid())
    children: set[int] = set()
    try:
        _serve(ctrl, wake_r, children)
    finally:
        for pid in children:
            kill_group(pid)
        remove_workdirs()


def _serve(ctrl: socket.socket, wake_r: int, children: set[int]) -> None:
    while True:
        readable, _, _ = select.select([ctrl, wake_r], [], [])
        if wake_r in readable:
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
            _reap(ctrl, children)
        if ctrl in readable:
            try:
                msg, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 1)
            except OSError:   # ConnectionResetError: the parent closed with our messages unread
                return
            if not msg:
                return   # the parent is gone: the finally in main() kills the workers
            request = json.loads(msg)
            if request["op"] == "shutdown":
                return
            if request["op"] == "spawn":
                pid = _spawn(ctrl, wake_r, fds[0], request)
                children.add(pid)
                _send(ctrl, op="spawned", tag=request["tag"], pid=pid)


def _spawn(ctrl: socket.socket, wake_r: int, fd: int, request: dict) -> int:
    pid = os.fork()
    if pid:
        os.close(fd)
        return pid
    try:   # the worker: drop the template's plumbing, then serve
        ctrl.close()
        os.close(wake_r)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        from arc_sandbox.executor.limits import Limits
        from arc_sandbox.executor.worker import serve
        serve(fd, Limits(**request["limits"]), request.get("isolation"))
    finally:
        os._exit(70)


def _reap(ctrl: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        remove_workdir(pid)
        _send(ctrl, op="exited", pid=pid, status=status, maxrss_kb=usage.ru_maxrss,
              cpu_s=usage.ru_utime + usage.ru_stime, strays=kill_strays(children))


def _send(ctrl: socket.socket, **message) -> None:
    try:
        ctrl.send(json.dumps(message).encode())
    except OSError:
        pass   # the parent is gone; main() notices on the next read


if __name__ == "__main__":
    main(int(sys.argv[1]))
