"""The parent's end of one worker: one job at a time, each on a socket of its own.

The parent is the trusted courier between the caller and the process that runs programs: it
never runs program code, and a program can write anything to any descriptor it finds in its
worker. So (see docs/security.md):

- requests travel on the worker's control socket; the worker shuts down its sending side of it
  after its hello, so a program can never write on it;
- each job's reply goes through a fresh pipe, whose write end is sent (on the control socket)
  only once the previous job's reply has been read and checked: the next request may wait in
  the worker's socket while a program runs (no round trip between two programs), but no program
  ever holds the reply pipe of a job after its own, and the parent closes each reply pipe when
  its job ends, so bytes left over by a program (a thread, a copied descriptor) reach no
  later job;
- a reply is read without blocking, bounded in size (``wire.FrameReader``) and in time (the
  job's deadline, kept by the Sandbox), and must be exactly one frame followed by end of file;
- after each reply the worker's thread count is read from ``/proc/<pid>/task``, from outside
  (the worker also counts its own before replying): a thread a program left running would run
  during the next job, so the worker is retired;
- and so is its hard ``RLIMIT_CPU``: the pristine guard lowers it when it notes tampering, a
  mark the program cannot take back, read here where the program cannot reach (pristine.py).
"""
from __future__ import annotations

import json
import os
import resource
import select
import socket
import time

from .wire import FrameReader, WireError, frame

_HELLO_CAP = 1 << 16


class Courier:
    """The parent's handle on one worker's sockets and on its process (``/proc``)."""

    def __init__(self, ctrl: socket.socket) -> None:
        ctrl.setblocking(False)
        self.ctrl = ctrl
        self.pid = 0                       # known once the hello has arrived
        self.threads0 = 0                  # the worker's own threads, counted after its hello
        self.cpu_hard0: int | None = None  # its hard RLIMIT_CPU after its hello
        self.channel: int | None = None    # read end of the reply pipe of the job in flight
        self.reader: FrameReader | None = None
        self._hello = FrameReader(_HELLO_CAP)

    def waitable(self) -> socket.socket | int | None:
        """What to wait on: the reply pipe of the job in flight, or the control socket for the hello."""
        if self.channel is not None:
            return self.channel
        return None if self.pid else self.ctrl

    # -- start-up ------------------------------------------------------------------------
    def read_hello(self) -> dict | None:
        """The worker's hello once it is complete (None until then); WireError if it is malformed."""
        if not self._hello.pump(self.ctrl.recv):
            return None
        try:
            hello = json.loads(self._hello.payload())
            pid = hello["pid"]
            if type(pid) is not int or pid <= 0:
                raise ValueError("bad pid")
        except (ValueError, KeyError, TypeError) as exc:
            raise WireError(f"bad hello from a worker ({exc})") from None
        self.pid = pid
        self.threads0 = self.threads() or 1
        self.cpu_hard0 = self.cpu_hard()
        return hello

    # -- one job ------------------------------------------------------------------------------
    def send_request(self, payload: bytes, deadline: float) -> None:
        """Hand a request to the worker (it may wait there behind the running one). OSError
        (``TimeoutError`` past ``deadline``) when the worker does not take it."""
        _send_all(self.ctrl, frame(payload), None, deadline)

    def open_reply(self, deadline: float) -> None:
        """Send the worker the write end of a fresh pipe for its current job's reply. (A pipe, not a
        socket pair: cheaper to make, and passing it does not feed the kernel's Unix-socket collector.)"""
        ours, theirs = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(ours, False)
        try:
            _send_all(self.ctrl, frame(b""), theirs, deadline)
        except OSError:
            os.close(ours)
            raise
        finally:
            os.close(theirs)
        self.channel, self.reader = ours, FrameReader()

    def pump(self) -> bool:
        """Read the reply as it comes; True once it is complete and the socket closed. WireError otherwise."""
        if self.channel is None:
            raise WireError("reply channel closed with no reply")
        channel = self.channel
        return self.reader.pump(lambda n: os.read(channel, n))

    def end_job(self) -> None:
        """Close the job's reply pipe: whatever else is written to it goes nowhere."""
        if self.channel is not None:
            os.close(self.channel)
        self.channel = None

    # -- the process, seen from outside ------------------------------------------------------
    def threads(self) -> int | None:
        """The worker's thread count (``/proc/<pid>/task`` has two links plus one per thread)."""
        try:
            return os.stat(f"/proc/{self.pid}/task").st_nlink - 2
        except OSError:
            return None

    def cpu_hard(self) -> int | None:
        try:
            return resource.prlimit(self.pid, resource.RLIMIT_CPU)[1]
        except (OSError, ValueError):   # not permitted (another user's process): the guard's own check stands
            return None

    def marked(self) -> bool:
        """The guard noted tampering in the worker (whatever the program did to its notes since)."""
        hard = self.cpu_hard() if self.cpu_hard0 is not None else None
        return hard is not None and hard != self.cpu_hard0

    def close(self) -> None:
        self.end_job()
        self.ctrl.close()


def _send_all(sock: socket.socket, data: bytes, fd: int | None, deadline: float) -> None:
    """Send ``data`` (with ``fd`` attached to its first byte), waiting at most until ``deadline``."""
    view, first = memoryview(data), fd is not None
    while view:
        try:
            if first:
                sent = socket.send_fds(sock, [view], [fd])
                first = False
            else:
                sent = sock.send(view)
            view = view[sent:]
        except (BlockingIOError, InterruptedError):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [sock], [], left)[1]:
                raise TimeoutError("the worker did not take its request") from None
