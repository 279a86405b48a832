"""A program can only ever affect its own result (issue 17).

Each attack runs through real workers between innocent jobs, on one worker and on two. Every
innocent job is distinct (its own code, its own output), so a result handed to the wrong job,
a result lost or a result copied would show.
"""
from __future__ import annotations

import json
import struct
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arc_sandbox import Job, Limits, Sandbox, Status
from arc_sandbox.executor.wire import MAX_REPLY_BYTES, FrameReader, Reply, WireError, encode, frame

GRID = [[1, 2], [3, 4]]
LIMITS = Limits(timeout_s=2.0, kill_grace_s=0.5)   # generous: innocent jobs must never time out under load


def innocent(i: int) -> tuple[Job, np.ndarray]:
    """A distinct job and the output only it produces (at least 2 rows: never a forged 1x1 grid)."""
    rows, cols, value = 2 + i % 3, 1 + (i // 3) % 4, i % 10
    code = f"def transform(g):\n    return [[{value}] * {cols} for _ in range({rows})]  # job {i}\n"
    return Job(code, [GRID], key=f"innocent-{i}"), np.full((rows, cols), value)


# A valid-looking reply for a one-grid job: status ok, a 1x1 grid of 7.
FORGED = frame(encode({"status": "ok", "grid_statuses": ["ok"], "error_type": None, "error_message": None,
                       "stdout": "", "cpu_s": 0.0, "peak_kb": 0, "rss_kb": 0, "retire": None,
                       "alloc_sites": []}, [np.full((1, 1), 7)]))

# Helpers every attack shares: the program looks for sockets among its descriptors (it could
# equally find them with gc.get_objects(), in frames, or in /proc/self).
PRELUDE = '''
import os, threading, time
PAYLOADS = [bytes.fromhex(h) for h in {payloads!r}]

def sockets():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{{fd}}").startswith(("socket:", "pipe:")):
                found.append(int(fd))
        except OSError:
            pass
    return found

def steal():
    """Reply sockets waiting in the control socket (the program's own, at most: the parent sends
    the next job's only after this one's reply)."""
    import socket
    stolen = []
    for fd in sockets():
        try:
            sock = socket.socket(fileno=os.dup(fd))
            sock.settimeout(0.5)   # it may come a moment after the request
            stolen += socket.recv_fds(sock, 4, 4)[1]
        except OSError:
            pass
    return stolen

def attack():
    targets = sockets() + steal()
    for payload in PAYLOADS:
        for fd in targets:
            try:
                os.write(fd, payload)
            except OSError:
                pass
'''


def hostile(payloads: list[bytes], body: str) -> str:
    return PRELUDE.format(payloads=[p.hex() for p in payloads]) + textwrap.dedent(body)


ATTACKS = {
    # framed replies written to every socket, then the program returns normally
    "forged_frames": hostile([FORGED] * 4, """
        def transform(g):
            attack()
            return g
        """),
    # the same through the socket objects the garbage collector knows
    "forged_via_gc": hostile([FORGED] * 3, """
        import gc, socket
        def transform(g):
            for obj in gc.get_objects():
                if isinstance(obj, socket.socket):
                    try:
                        obj.send(PAYLOADS[0])
                    except OSError:
                        pass
            attack()
            return g
        """),
    # fields of the wrong types (once a TypeError out of Sandbox.run)
    "wrong_types": hostile([frame(encode({"status": "ok", "grid_statuses": ["ok"], "error_type": None,
                                          "error_message": None, "stdout": "", "cpu_s": "x", "peak_kb": "x",
                                          "rss_kb": 0, "retire": 123, "alloc_sites": []},
                                         [np.full((1, 1), 7)]))], """
        def transform(g):
            attack()
            os._exit(0)   # so that this frame is the only one
        """),
    # a length prefix announcing a huge frame, then one byte (once a hang)
    "huge_announcement": hostile([struct.pack("<I", 2**31) + b"x"], """
        def transform(g):
            attack()
            return g
        """),
    # half a frame, then the program keeps running until its deadline
    "half_frame_then_hang": hostile([FORGED[:len(FORGED) // 2]], """
        def transform(g):
            attack()
            while True:
                pass
        """),
    # megabytes of garbage
    "flood": hostile([b"\xff" * (1 << 20)] * 6, """
        def transform(g):
            attack()
            return g
        """),
    # a thread that writes forged replies later, during whatever job comes next
    "thread_writes_later": hostile([FORGED] * 2, """
        def later():
            for _ in range(40):
                time.sleep(0.05)
                attack()
        def transform(g):
            threading.Thread(target=later, daemon=True).start()
            return g
        """),
    # a thread that waits to read the next request off the control socket and answer it
    "thread_steals_requests": hostile([FORGED], """
        def steal():
            import socket
            for _ in range(40):
                time.sleep(0.05)
                for fd in sockets():
                    try:
                        data, fds, _, _ = socket.recv_fds(socket.socket(fileno=os.dup(fd)), 1 << 16, 4)
                        for f in fds:
                            os.write(f, PAYLOADS[0])
                    except OSError:
                        pass
        def transform(g):
            threading.Thread(target=steal, daemon=True).start()
            return g
        """),
    # the reply socket closed by the program
    "close_sockets": hostile([], """
        def transform(g):
            for fd in sockets():
                os.close(fd)
            return g
        """),
    # a copy of the reply socket kept open after the job, to write into later
    "keep_a_copy": hostile([FORGED], """
        KEPT = []
        def transform(g):
            KEPT.extend(os.dup(fd) for fd in sockets())
            return g
        """),
}


@pytest.fixture(scope="module", params=[1, 2], ids=["1worker", "2workers"])
def sb(request):
    with Sandbox(workers=request.param, limits=LIMITS) as sandbox:
        yield sandbox


def check_innocents(results, expected) -> None:
    assert sorted(r.index for r in results) == list(range(len(results)))
    for r in results:
        if r.index in expected:
            assert r.status is Status.OK, (r.key, r.status, r.error_type, r.error_message)
            assert np.array_equal(r.outputs[0], expected[r.index]), (r.key, r.outputs[0])


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_reaches_no_other_job(sb, attack):
    jobs, expected = [], {}
    for i in range(8):
        if i == 3:
            jobs.append(Job(ATTACKS[attack], [GRID], key="attacker"))
            continue
        job, out = innocent(i)
        expected[len(jobs)] = out
        jobs.append(job)
    results = sb.run(jobs)
    check_innocents(results, expected)
    attacker = results[3]
    assert attacker.key == "attacker"
    # Whatever the attacker got is its own (a forged reply of its own, or a failure of its own).
    assert attacker.status in (Status.OK, Status.CRASHED, Status.TIMEOUT), attacker
    assert sb.run([innocent(9)[0]])[0].status is Status.OK   # the sandbox is still fine


def test_no_reply_socket_is_within_a_programs_reach_but_its_own(sb):
    # Writing to every socket it holds reaches nothing: the control socket takes no bytes from a
    # worker, and its reply socket is not handed over before the program has run.
    code = hostile([FORGED], "def transform(g):\n    attack.__globals__['steal'] = lambda: []\n"
                            "    attack()\n    return g\n")
    r = sb.run([Job(code, [GRID])])[0]
    assert r.status is Status.OK and r.outputs[0].tolist() == GRID


def test_forged_frames_give_the_attacker_a_precise_status(sb):
    r = sb.run([Job(ATTACKS["forged_frames"], [GRID])])[0]   # it stole its own reply socket
    assert (r.status, r.error_type) == (Status.CRASHED, "ForgedReply")
    assert "after the reply frame" in r.error_message


def test_wrong_types_and_huge_announcements_are_named(sb):
    wrong, huge = sb.run([Job(ATTACKS["wrong_types"], [GRID]), Job(ATTACKS["huge_announcement"], [GRID])])
    assert wrong.error_type == "ForgedReply"
    assert any(field in wrong.error_message for field in ("cpu_s", "peak_kb", "retire")), wrong.error_message
    assert huge.error_type == "ForgedReply" and "over the" in huge.error_message


def test_leftover_threads_retire_the_worker(sb):
    r = sb.run([Job(ATTACKS["thread_writes_later"], [GRID])])[0]
    if r.status is Status.OK:   # its thread did not write before the reply: the worker goes anyway
        assert r.worker_replaced and any("thread" in n for n in r.notes), r.notes


# -- the pristine guard protects itself ------------------------------------------------------
NEUTER_VIA_GC = """
import gc, sys
import numpy as np
def transform(g):
    for obj in gc.get_objects():
        if type(obj).__name__ == "Guard":
            obj._notes.clear()           # erase what it noted
            obj._armed = False           # and stop it noting more
            obj._cpu_cap = None
    np.__dict__["flipud"] = lambda m: m * 0   # tampering that would reach the next programs
    sys.setrecursionlimit(60)
    for obj in gc.get_objects():
        if type(obj).__name__ == "Guard":
            obj._runtime = obj._state()
            obj._snapshots.clear()
    return g
"""

NEUTER_VIA_FRAMES = """
import numpy as np
def transform(g):
    try:
        raise ValueError
    except ValueError as exc:
        frame = exc.__traceback__.tb_frame
    while frame is not None:
        guard = frame.f_locals.get("guard")
        if guard is not None:
            guard._notes.clear()
            guard._armed = False
        frame = frame.f_back
    vars(np)["flipud"] = lambda m: m * 0
    return g
"""

NEUTER_VIA_MODULES = """
import sys
import numpy as np
def transform(g):
    pristine = sys.modules["arc_sandbox.executor.pristine"]
    pristine.Guard.check = lambda self, code: None
    pristine.__dict__["_DEEP_ACCESS"] = __import__("re").compile("(?!)")
    np.__dict__["flipud"] = lambda m: m * 0
    return g
"""


@pytest.mark.parametrize("attack", [NEUTER_VIA_GC, NEUTER_VIA_FRAMES, NEUTER_VIA_MODULES],
                         ids=["gc", "frames", "sys.modules"])
def test_a_neutered_guard_leaves_no_tampering_behind(attack):
    flip = "import numpy as np\nimport sys\ndef transform(g):\n    return [[*np.flipud(np.asarray(g))[0]], [min(sys.getrecursionlimit() // 200, 9)] * 2]  # {}\n"
    with Sandbox(workers=1, limits=LIMITS) as sb:
        results = sb.run([Job(flip.format(0), [GRID]), Job(attack, [GRID]), Job(flip.format(1), [GRID]),
                          Job(flip.format(2), [GRID])])
    assert results[1].worker_replaced, results[1]
    for r in (results[0], results[2], results[3]):
        assert r.status is Status.OK, r
        assert r.outputs[0].tolist() == [[3, 4], [5, 5]], r.outputs[0]   # flipud intact, recursion limit 1000


def test_common_recursion_budget_does_not_retire_workers():
    src = "from common import *\ndef transform(g):\n    g = np.zeros((12, 12), dtype=int)\n    flood_fill(g, 0, 0, 3)\n    return g  # {}\n"
    with Sandbox(workers=1, limits=LIMITS) as sb:
        results = sb.run([Job(src.format(i), [GRID]) for i in range(3)])
    assert all(r.status is Status.OK and not r.worker_replaced for r in results), results


# -- replies: bounded, exactly one frame, every field checked -----------------------------
def test_reply_over_the_cap_gets_its_own_status():
    grids = [np.full((30, 30), i % 10) for i in range(MAX_REPLY_BYTES // 900 + 10)]
    # 4.2M input cells: above the default Limits.max_input_cells, which would stop the job before it runs
    with Sandbox(workers=1, limits=Limits(timeout_s=20, max_input_cells=10**7)) as sb:
        big, after = sb.run([Job("def transform(g):\n    return g", grids), innocent(0)[0]])
    assert (big.status, big.error_type) == (Status.INVALID_OUTPUT, "ReplyTooLarge"), big.error_message
    assert "cap" in big.error_message and after.status is Status.OK


def good_header(**changes) -> dict:
    header = {"status": "ok", "grid_statuses": ["ok"], "error_type": None, "error_message": None, "stdout": "",
              "cpu_s": 0.5, "peak_kb": 1, "rss_kb": 2, "retire": None, "alloc_sites": []}
    return {**header, **changes}


def parse(header: dict, grids=(np.ones((1, 1), dtype=int),), n: int = 1) -> Reply:
    return Reply.parse(encode(header, list(grids)), n_grids=n, max_side=30, max_stdout=4096, max_error=2000,
                       traced=False)


def test_a_good_reply_parses():
    reply = parse(good_header())
    assert reply.status == "ok" and reply.outputs[0].tolist() == [[1]]


@pytest.mark.parametrize("changes, grids, n", [
    ({"cpu_s": float("nan")}, None, 1), ({"cpu_s": -1}, None, 1), ({"cpu_s": True}, None, 1),
    ({"peak_kb": "x"}, None, 1), ({"rss_kb": 1.5}, None, 1), ({"retire": 123}, None, 1),
    ({"status": "crashed", "grid_statuses": ["crashed"]}, [None], 1),   # parent-only status
    ({"status": "timeout"}, None, 1),                                    # disagrees with its grids
    ({"grid_statuses": ["ok", "ok"]}, None, 1),
    ({}, [np.ones((1, 1), dtype=int)] * 2, 1),                           # more grids than inputs
    ({"grid_statuses": ["runtime_error"], "status": "runtime_error"}, None, 1),   # an output with a failure
    ({"stdout": "x" * 10_000}, None, 1), ({"extra": 1}, None, 1), ({"alloc_sites": [[1, 2, "x", False]]}, None, 1),
])
def test_every_field_is_checked(changes, grids, n):
    header = good_header(**changes)
    with pytest.raises(WireError):
        parse(header, grids if grids is not None else (np.ones((1, 1), dtype=int),), n)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                     max_size=3), max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(good_header()) + ["shapes", "x"]), json_values), st.binary(max_size=40),
       st.integers(0, 3))
def test_parse_only_ever_raises_wire_error(header, tail, n):
    raw = json.dumps(header).encode()
    for data in (struct.pack("<I", len(raw)) + raw + tail, tail, raw):
        try:
            parse_bytes(data, n)
        except WireError:
            pass


def parse_bytes(data: bytes, n: int) -> Reply:
    return Reply.parse(data, n_grids=n, max_side=30, max_stdout=4096, max_error=2000, traced=False)


def test_deeply_nested_json_is_a_wire_error():
    raw = b"[" * 100_000
    with pytest.raises(WireError):
        parse_bytes(struct.pack("<I", len(raw)) + raw, 1)


def test_frame_reader_bounds():
    import socket
    for data, error in [(struct.pack("<I", MAX_REPLY_BYTES + 1), "cap"), (FORGED + b"x", "after the reply"),
                        (FORGED[:7], "truncated"), (b"", "no reply"), (b"\x01", "partial length")]:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.sendall(data)
        b.close()
        with pytest.raises(WireError, match=error):
            FrameReader().pump(a.recv)
        a.close()


# -- generated hostile writes -----------------------------------------------------------------
def _random_frame(draw) -> bytes:
    header = draw(st.dictionaries(st.sampled_from(sorted(good_header()) + ["x"]), json_values, max_size=12))
    header = {**good_header(), **header} if draw(st.booleans()) else header
    grids = draw(st.lists(st.none() | st.just(np.full((1, 1), 7)), max_size=2))
    return frame(encode(header, grids))


@st.composite
def hostile_writes(draw) -> list[bytes]:
    kinds = st.sampled_from(["frame", "truncated", "garbage", "announce", "forged"])
    payloads = []
    for kind in draw(st.lists(kinds, min_size=1, max_size=4)):
        if kind == "frame":
            payloads.append(_random_frame(draw))
        elif kind == "truncated":
            data = _random_frame(draw)
            payloads.append(data[:draw(st.integers(0, len(data) - 1))])
        elif kind == "garbage":
            payloads.append(draw(st.binary(min_size=1, max_size=64)))
        elif kind == "announce":
            payloads.append(struct.pack("<I", draw(st.integers(0, 2**32 - 1))) + draw(st.binary(max_size=8)))
        else:
            payloads.append(FORGED * draw(st.integers(1, 3)))
    return payloads


@pytest.fixture(scope="module")
def sb2():
    with Sandbox(workers=2, limits=LIMITS) as sandbox:
        yield sandbox


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile_writes(), st.sampled_from(["now", "thread", "now_and_thread"]), st.integers(0, 4))
def test_generated_hostile_writes_reach_no_other_job(sb2, payloads, when, position):
    body = {"now": "def transform(g):\n    attack()\n    return g\n",
            "thread": "def later():\n    time.sleep(0.02)\n    attack()\n"
                      "def transform(g):\n    threading.Thread(target=later, daemon=True).start()\n    return g\n",
            "now_and_thread": "def later():\n    for _ in range(5):\n        time.sleep(0.02)\n        attack()\n"
                              "def transform(g):\n    attack()\n    threading.Thread(target=later, daemon=True).start()\n"
                              "    return g\n"}[when]
    jobs, expected = [], {}
    for i in range(6):
        if i == position:
            jobs.append(Job(hostile(payloads, body), [GRID], key="attacker"))
        job, out = innocent(i)
        expected[len(jobs)] = out
        jobs.append(job)
    results = sb2.run(jobs)
    check_innocents(results, expected)
    attacker = next(r for r in results if r.key == "attacker")
    assert attacker.status in (Status.OK, Status.CRASHED, Status.TIMEOUT), attacker
