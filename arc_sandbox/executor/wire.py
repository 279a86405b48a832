"""The bytes that travel between the parent and its workers.

A message is a JSON header plus the grids as raw uint8 planes. Nothing is unpickled:
a program runs in the worker and could write anything to the worker's end of the pipe,
so the parent only ever decodes JSON and fixed-size byte planes, and checks both.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_LEN = struct.Struct("<I")


class WireError(ValueError):
    """A message that does not decode: the worker (or the program in it) sent garbage."""


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
        header = json.loads(data[_LEN.size:_LEN.size + n])
        shapes = header["shapes"]
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise WireError(f"undecodable message ({exc})") from None
    if not isinstance(header, dict) or not isinstance(shapes, list):
        raise WireError("message header is not an object with a shape list")
    grids: list[np.ndarray | None] = []
    offset = _LEN.size + n
    for shape in shapes:
        if shape is None:
            grids.append(None)
            continue
        if (not isinstance(shape, list) or len(shape) != 2
                or not all(isinstance(s, int) and 1 <= s <= max_side for s in shape)):
            raise WireError(f"bad grid shape {shape!r}")
        size = shape[0] * shape[1]
        if offset + size > len(data):
            raise WireError("message shorter than its grids")
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
    alloc_sites: list = field(default_factory=list)  # [(line, size_kb, text)] when traced

    def to_bytes(self) -> bytes:
        head = {k: v for k, v in self.__dict__.items() if k != "outputs"}
        return encode(head, self.outputs)

    @classmethod
    def from_bytes(cls, data: bytes, max_side: int = 30) -> "Reply":
        header, grids = decode(data, max_side)
        header.pop("shapes")
        try:
            reply = cls(outputs=grids, **header)
        except TypeError as exc:
            raise WireError(f"unexpected reply fields ({exc})") from None
        if len(reply.grid_statuses) != len(grids):
            raise WireError("reply has a different number of grid statuses and grids")
        return reply
