"""The bytes that travel between the parent and its workers.

A message is a JSON header plus the grids as raw uint8 planes, sent as one length-prefixed
frame. Nothing is unpickled: a program runs in the worker and can write anything to any
descriptor it finds, so the parent reads a reply with :class:`FrameReader` (bounded in size,
exactly one frame) and accepts it only through :meth:`Reply.parse`, which checks every field
against the request. Anything else is a :class:`WireError`.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .results import Status

_LEN = struct.Struct("<I")
MAX_REPLY_BYTES = 1 << 22   # 4 MiB: far above any real reply (outputs are at most 30x30 bytes each)
# What a worker may report for a program (the others are decided by the parent).
WORKER_STATUSES = frozenset({Status.OK, Status.SYNTAX_ERROR, Status.MISSING_ENTRY, Status.RUNTIME_ERROR,
                             Status.TIMEOUT, Status.MEMORY_LIMIT, Status.INVALID_OUTPUT})
_STATUS_VALUES = {s.value: s for s in WORKER_STATUSES}
_MAX_TAIL = 256        # room for what the worker appends to bounded text ("[... N more characters dropped]")
_MAX_RETIRE_CHARS = 2000
_MAX_SITES = 64
_CHUNK = 1 << 12   # first read of a reply: most replies fit
_COLOURS = bytes(range(10))
# Exit codes of a worker whose channels a program broke (the parent turns them into statuses).
EXIT_REPLY_LOST = 71     # no reply could be made: the program closed or replaced the reply pipe or the worker's files
EXIT_REQUEST_LOST = 72   # the next request could not be read: the job it carried never started


class WireError(ValueError):
    """A message that does not decode or does not fit its request: garbage or a forgery."""


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def frame_length(prefix: bytes) -> int:
    return _LEN.unpack_from(prefix, 0)[0]


class FrameReader:
    """Reads exactly one frame from a non-blocking pipe or socket, then expects end of file.

    Never buffers more than the frame it announced (at most ``cap`` bytes): a longer
    announcement, a byte after the frame, or an end of file inside it is a WireError.
    """

    def __init__(self, cap: int = MAX_REPLY_BYTES) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.need: int | None = None   # payload length, once the prefix is in

    @property
    def complete(self) -> bool:
        return self.need is not None and len(self.buf) == _LEN.size + self.need

    def pump(self, read: Callable[[int], bytes]) -> bool:
        """Read what is there with ``read(n)`` (``os.read`` of a non-blocking pipe, ``socket.recv``);
        True at end of file (with the frame complete), False if more may come."""
        while True:
            # Up to the frame's end (a whole small reply in one read), never beyond: once it is
            # complete, one more byte tells end of file from extra bytes.
            want = _CHUNK if self.need is None else _LEN.size + self.need - len(self.buf)
            try:
                data = read(max(want, 1))
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                raise WireError(f"reply channel failed ({exc})") from None
            if not data:
                if not self.complete:
                    got = max(0, len(self.buf) - _LEN.size)
                    raise WireError("reply channel closed with no reply" if not self.buf else
                                    f"truncated reply frame ({got} of {self.need} bytes)" if self.need is not None
                                    else "truncated reply frame (partial length prefix)")
                return True
            if self.complete:
                raise WireError("bytes after the reply frame (a second, unrequested message)")
            self.buf += data
            if self.need is None and len(self.buf) >= _LEN.size:
                self.need = frame_length(self.buf)
                if self.need > self.cap:
                    raise WireError(f"reply frame announces {self.need} bytes, over the {self.cap}-byte cap")
            if self.need is not None and len(self.buf) > _LEN.size + self.need:
                raise WireError("bytes after the reply frame (a second, unrequested message)")

    def payload(self) -> bytes:
        return bytes(self.buf[_LEN.size:])


def encode(header: dict[str, Any], grids: list[np.ndarray | None] = ()) -> bytes:
    """Header plus grids; ``header["shapes"]`` is filled in here (None for missing grids)."""
    shapes, planes = [], []
    for g in grids:
        if g is None:
            shapes.append(None)
        else:
            shapes.append(g.shape)
            planes.append(np.ascontiguousarray(g, dtype=np.uint8).tobytes())
    head = json.dumps({**header, "shapes": shapes}, separators=(",", ":")).encode()
    return b"".join([_LEN.pack(len(head)), head, *planes])


def decode(data: bytes, max_side: int = 30) -> tuple[dict[str, Any], list[np.ndarray | None]]:
    """Inverse of :func:`encode`; raises WireError on anything malformed."""
    try:
        (n,) = _LEN.unpack_from(data, 0)
        if _LEN.size + n > len(data):
            raise ValueError("header longer than the message")
        header = json.loads(data[_LEN.size:_LEN.size + n])
        shapes = header["shapes"]
    except (struct.error, ValueError, KeyError, TypeError, RecursionError) as exc:   # deep nesting
        raise WireError(f"undecodable message ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(header, dict) or not isinstance(shapes, list):
        raise WireError("message header is not an object with a shape list")
    grids: list[np.ndarray | None] = []
    offset = _LEN.size + n
    for shape in shapes:
        if shape is None:
            grids.append(None)
            continue
        if (not isinstance(shape, list) or len(shape) != 2
                or not all(type(s) is int and 1 <= s <= max_side for s in shape)):
            raise WireError(f"bad grid shape {str(shape)[:80]}")
        size = shape[0] * shape[1]
        if offset + size > len(data):
            raise WireError("message shorter than its grids")
        if data[offset:offset + size].translate(None, _COLOURS):   # anything left is not a colour
            raise WireError("grid value outside 0..9")
        plane = np.frombuffer(data, dtype=np.uint8, count=size, offset=offset)
        grids.append(plane.reshape(shape).astype(np.int64))
        offset += size
    if offset != len(data):
        raise WireError("trailing bytes after the grids")
    return header, grids


@dataclass
class Request:
    """Parent -> worker: one program to run."""

    code: str
    inputs: list[np.ndarray]
    entry: str | None = None
    trace_memory: bool = False   # re-run with tracemalloc, report allocation sites

    def to_bytes(self) -> bytes:
        return encode({"code": self.code, "entry": self.entry, "trace": self.trace_memory}, self.inputs)

    @classmethod
    def from_bytes(cls, data: bytes, max_side: int = 30) -> "Request":
        header, grids = decode(data, max_side)
        return cls(header["code"], grids, header.get("entry"), bool(header.get("trace")))


@dataclass
class Reply:
    """Worker -> parent: what one program did. Mirrors the fields of ProgramResult it can know."""

    status: str
    grid_statuses: list[str]
    outputs: list[np.ndarray | None]
    error_type: str | None = None
    error_message: str | None = None
    stdout: str = ""
    cpu_s: float = 0.0
    peak_kb: int = 0           # VmHWM during the program minus RSS before it
    rss_kb: int = 0            # worker RSS after the program (the next program's baseline)
    retire: str | None = None  # the worker leaves after this reply, and why (state was tampered with...)
    alloc_sites: list = field(default_factory=list)  # [(line, size_kb, text, failed)] when traced

    def to_bytes(self) -> bytes:
        head = {k: v for k, v in self.__dict__.items() if k != "outputs"}
        return encode(head, self.outputs)

    @classmethod
    def parse(cls, data: bytes, *, n_grids: int, max_side: int, max_stdout: int, max_error: int,
              traced: bool) -> "Reply":
        """Decode a reply and check every field against its request; WireError names the first bad one."""
        header, grids = decode(data, max_side)
        header.pop("shapes")
        expected = {f for f in cls.__dataclass_fields__ if f != "outputs"}
        if set(header) != expected:
            raise WireError(f"reply fields {sorted(header)[:20]} are not {sorted(expected)}")
        if len(grids) != n_grids:
            raise WireError(f"reply has {len(grids)} grids for {n_grids} inputs")
        statuses = header["grid_statuses"]
        if not isinstance(statuses, list) or len(statuses) != n_grids:
            raise WireError(f"reply has no list of {n_grids} grid statuses")
        for i, (s, g) in enumerate(zip(statuses, grids)):
            if _STATUS_VALUES.get(s) is None if isinstance(s, str) else True:
                raise WireError(f"grid status {i} is not a worker status")
            if (g is not None) != (s == Status.OK.value):
                raise WireError(f"grid {i}: an output goes with status ok, and only with it")
        overall = next((s for s in statuses if s != Status.OK.value), Status.OK.value)
        if header["status"] != overall:
            raise WireError("status is not that of the first failing grid")
        _text(header, "error_type", 200, optional=True)
        _text(header, "error_message", max_error + _MAX_TAIL, optional=True)
        _text(header, "stdout", max_stdout + _MAX_TAIL, optional=False)
        _text(header, "retire", _MAX_RETIRE_CHARS, optional=True)
        cpu = header["cpu_s"]
        if type(cpu) not in (int, float) or not math.isfinite(cpu) or cpu < 0:
            raise WireError("cpu_s is not a finite non-negative number")
        for name in ("peak_kb", "rss_kb"):
            if type(header[name]) is not int or not 0 <= header[name] < 1 << 40:
                raise WireError(f"{name} is not a non-negative integer")
        _sites(header["alloc_sites"], traced)
        return cls(outputs=grids, **header)


def _text(header: dict, name: str, limit: int, *, optional: bool) -> None:
    value = header[name]
    if value is None and optional:
        return
    if type(value) is not str or len(value) > limit:
        raise WireError(f"{name} is not a string of at most {limit} characters")


def _sites(sites: Any, traced: bool) -> None:
    if type(sites) is not list or len(sites) > (_MAX_SITES if traced else 0):
        raise WireError("alloc_sites is not a short list (or came for an untraced program)")
    for item in sites:
        if not (type(item) is list and len(item) == 4 and type(item[0]) is int and item[0] >= 0
                and type(item[1]) is int and item[1] >= 0 and type(item[2]) is str and len(item[2]) <= 1000
                and type(item[3]) is bool):
            raise WireError("alloc_sites holds a malformed site")
