"""Per-program peak memory, MEMORY_LIMIT exactness, the host memory guard and allocation sites.

The truth for each program is the memory it touches, known from its code; reported peaks must
be within 10 % (or 5 MB) of it. First touches of fresh memory are slow on some VMs (1 GB can
take several seconds), hence the generous timeouts.
"""
from __future__ import annotations

import psutil
import pytest
from hypothesis import given, settings, strategies as st

from arc_sandbox import Job, Limits, Sandbox, Status

MB = 2**20
GRID = [[1, 2], [3, 4]]


def close_to(peak_mb: float, truth_mb: float) -> bool:
    return abs(peak_mb - truth_mb) <= max(0.1 * truth_mb, 5.0)


def numpy_touch(mb: float) -> str:
    return f"import numpy as np\ndef transform(g):\n    a = np.ones(int({mb} * 2**20), dtype=np.uint8)\n    return g\n"


@pytest.fixture(scope="module")
def big():
    """Room for 1 GB programs."""
    with Sandbox(workers=2, limits=Limits(timeout_s=60, memory_mb=1536)) as sb:
        yield sb


@pytest.fixture(scope="module")
def small():
    """A 256 MB limit, for the statuses."""
    with Sandbox(workers=2, limits=Limits(timeout_s=20, memory_mb=256)) as sb:
        yield sb


def run1(sb: Sandbox, code: str, **job):
    return sb.run([Job(code, [GRID], **job)])[0]


# -- peaks ------------------------------------------------------------------------------------
PEAK_CASES = {
    "numpy 10 MB": (numpy_touch(10), 10),
    "numpy 100 MB": (numpy_touch(100), 100),
    # 3M distinct ints in a list of exactly 3M slots: 32 B per int object, 8 B per slot
    "python ints": ("def transform(g):\n    a = list(range(3_000_000))\n    return g\n", 3e6 * 40 / MB),
    # 'x' doubled to 128 MB: the last concatenation holds 64 MB + 128 MB
    "doubling string": ("def transform(g):\n    s = 'x'\n    while len(s) < 2**27:\n        s = s + s\n"
                        "    return g\n", 192),
    # 64 chunks of 1 MB appended one by one
    "gradual growth": ("import numpy as np\ndef transform(g):\n    held = []\n    for _ in range(64):\n"
                       "        held.append(np.ones(2**20, dtype=np.uint8))\n    return g\n", 64),
    # 10 GB mapped, one byte written per MB: 10240 pages of 4 KB touched (an anonymous mmap gets
    # no transparent huge pages, unlike numpy's big arrays, which would make it 10 GB), 40 MB
    "10 GB untouched but 40 MB": ("import mmap\ndef transform(g):\n    m = mmap.mmap(-1, 10 * 2**30)\n"
                                  "    for i in range(0, len(m), 2**20):\n        m[i] = 1\n    return g\n", 40),
}


@pytest.mark.parametrize("name", [k for k in PEAK_CASES if "10 GB" not in k])
def test_peak_is_what_the_program_touched(big, name):
    code, truth = PEAK_CASES[name]
    r = run1(big, code)
    assert r.status is Status.OK, r.error_message
    assert close_to(r.peak_memory_mb, truth), (name, r.peak_memory_mb, truth)


def test_peak_counts_touched_pages_not_reserved_ones():
    code, truth = PEAK_CASES["10 GB untouched but 40 MB"]
    with Sandbox(workers=1, limits=Limits(timeout_s=30, memory_mb=11 * 1024)) as sb:
        r = run1(sb, code)
    assert r.status is Status.OK, r.error_message
    assert close_to(r.peak_memory_mb, truth), r.peak_memory_mb


@pytest.mark.slow
def test_peak_of_one_gigabyte(big):
    r = run1(big, numpy_touch(1024))
    assert r.status is Status.OK, r.error_message
    assert close_to(r.peak_memory_mb, 1024), r.peak_memory_mb


def test_peaks_stay_right_across_a_sequence_in_one_worker():
    """Freed heap kept by malloc, or a program's globals kept alive by the function <-> globals
    cycle, would be reused by the next program without raising its peak (under-reporting)."""
    sequence = [
        ("import numpy as np\nBIG = np.ones(50 * 2**20, dtype=np.uint8)\ndef transform(g):\n    return g\n", 50),
        ("def transform(g):\n    return g\n", 0),
        (numpy_touch(30), 30), (numpy_touch(30), 30), (numpy_touch(10), 10),
        ("import numpy as np\ndef transform(g):\n    a = [np.ones(2**20, dtype=np.uint8) for _ in range(64)]\n"
         "    return g\n", 64),
        ("import numpy as np\ndef transform(g):\n    a = [np.ones(2**20, dtype=np.uint8) for _ in range(64)]\n"
         "    return g\n", 64),
        ("def transform(g):\n    a = list(range(1_000_000))\n    return g\n", 1e6 * 40 / MB),
        (numpy_touch(20), 20),
    ]
    # dedupe=False: the repeated programs must really run again, in the worker the first one left
    with Sandbox(workers=1, limits=Limits(timeout_s=30, memory_mb=512), dedupe=False) as sb:
        results = sb.run([Job(code, [GRID]) for code, _ in sequence])
        assert sb.stats.workers_started == 1   # none of these needed a fresh worker
    for (code, truth), r in zip(sequence, results):
        assert r.status is Status.OK
        assert close_to(r.peak_memory_mb, truth), (code, r.peak_memory_mb, truth)


def test_peak_of_a_program_killed_from_outside():
    # sum() over a huge range is one C call: the in-worker deadline can't interrupt it
    code = ("import numpy as np\ndef transform(g):\n    a = np.ones(100 * 2**20, dtype=np.uint8)\n"
            "    return sum(range(10**12))\n")
    with Sandbox(workers=1, limits=Limits(timeout_s=2.0, memory_mb=512)) as sb:
        r = run1(sb, code)
    assert r.status is Status.TIMEOUT and "killed from outside" in r.error_message
    assert close_to(r.peak_memory_mb, 100), r.peak_memory_mb


def test_measurement_off_reports_zero():
    with Sandbox(workers=1, limits=Limits(timeout_s=10, memory_mb=512, measure_memory=False)) as sb:
        r = run1(sb, numpy_touch(50))
    assert r.status is Status.OK and r.peak_memory_mb == 0.0


@settings(max_examples=8, deadline=None)
@given(mb=st.integers(min_value=0, max_value=200))
def test_peak_property_any_size(big, mb):
    r = run1(big, numpy_touch(mb))
    assert r.status is Status.OK
    assert close_to(r.peak_memory_mb, mb), (mb, r.peak_memory_mb)


# -- statuses -----------------------------------------------------------------------------------
STATUS_CASES = {
    "under the limit": (numpy_touch(160), Status.OK, None),
    "over the limit": (numpy_touch(400), Status.MEMORY_LIMIT, "MemoryError"),
    "10 GB": (numpy_touch(10 * 1024), Status.MEMORY_LIMIT, "MemoryError"),
    "2-D array of 74 GB": ("import numpy as np\ndef transform(g):\n    return np.ones((100000, 100000))\n",
                           Status.MEMORY_LIMIT, "MemoryError"),
    "doubling string forever": ("def transform(g):\n    s = 'x'\n    while True:\n        s = s + s\n",
                                Status.MEMORY_LIMIT, "MemoryError"),
    "growing python lists": ("def transform(g):\n    a = []\n    while True:\n        a.append(list(range(1000)))\n",
                             Status.MEMORY_LIMIT, "MemoryError"),
    "at the top level": ("import numpy as np\nA = np.ones(2**31, dtype=np.uint8)\ndef transform(g):\n    return g\n",
                         Status.MEMORY_LIMIT, "MemoryError"),
    "explicit raise": ("def transform(g):\n    raise MemoryError('pretend')\n", Status.RUNTIME_ERROR, "MemoryError"),
    "explicit raise in a helper": ("def f():\n    raise MemoryError\ndef transform(g):\n    return f()\n",
                                   Status.RUNTIME_ERROR, "MemoryError"),
    "caught and recovered": ("import numpy as np\ndef transform(g):\n    try:\n        np.ones(2**31, dtype=np.uint8)\n"
                             "    except MemoryError:\n        pass\n    return g\n", Status.OK, None),
    "caught and re-raised": ("import numpy as np\ndef transform(g):\n    try:\n        np.ones(2**31, dtype=np.uint8)\n"
                             "    except MemoryError:\n        raise\n", Status.MEMORY_LIMIT, "MemoryError"),
    "caught, other error raised": ("import numpy as np\ndef transform(g):\n    try:\n        np.ones(2**31, dtype=np.uint8)\n"
                                   "    except MemoryError:\n        raise ValueError('too big')\n",
                                   Status.MEMORY_LIMIT, "ValueError"),
}


@pytest.mark.parametrize("name", list(STATUS_CASES))
def test_status_is_exact(small, name):
    code, status, error_type = STATUS_CASES[name]
    r = run1(small, code)
    assert (r.status, r.error_type) == (status, error_type), (name, r.error_message)
    assert r.peak_memory_mb <= 256 + 5   # never above the limit


def test_worker_stays_usable_after_hitting_the_limit(small):
    first, second = small.run([Job(numpy_touch(400), [GRID]), Job("def transform(g):\n    return g.T\n", [GRID])])
    assert first.status is Status.MEMORY_LIMIT
    assert second.status is Status.OK and second.outputs[0].tolist() == [[1, 3], [2, 4]]
    assert second.peak_memory_mb < 5


# -- the host memory guard -----------------------------------------------------------------------
def test_host_guard_kills_the_hog_and_spares_the_batch():
    hog = ("import numpy as np, time\ndef transform(g):\n    held = []\n    for _ in range(400):\n"
           "        held.append(np.ones(10 * 2**20, dtype=np.uint8))\n        time.sleep(0.01)\n    return g\n")
    quick = "import time\ndef transform(g):\n    time.sleep(0.05)\n    return g.T\n"
    jobs = [Job(hog, [GRID])] + [Job(quick, [[[i % 10, 0], [0, i // 10]]]) for i in range(1, 30)]
    with Sandbox(workers=2, limits=Limits(timeout_s=60, memory_mb=6000)) as sb:
        # the floor sits 1 GB under what is available now: only the hog (up to 4 GB) can cross it,
        # while other processes of the host moving by a few hundred MB cannot
        sb.memory_floor_mb = psutil.virtual_memory().available / MB - 1000
        results = sb.run(jobs)
        assert sb.stats.guard_kills == 1
    killed = results[0]
    assert killed.status is Status.MEMORY_LIMIT and killed.error_type == "MemoryGuard"
    assert "host memory guard" in killed.error_message and "largest running" in killed.error_message
    assert 800 <= killed.peak_memory_mb <= 2500
    for i, r in enumerate(results[1:], 1):
        assert r.status is Status.OK and r.outputs[0].tolist() == [[i % 10, 0], [0, i // 10]]


# -- allocation sites ------------------------------------------------------------------------------
def test_alloc_sites_name_the_lines_that_held_memory(big):
    code = ("import numpy as np\n"
            "def transform(g):\n"
            "    a = np.ones(40 * 2**20, dtype=np.uint8)\n"
            "    b = [str(i) for i in range(100_000)]\n"
            "    c = np.zeros((1000, 1000))\n"
            "    return g\n")
    r = run1(big, code, trace_memory=True)
    assert r.status is Status.OK
    sites = {s.line: s for s in r.alloc_sites}
    assert [s.line for s in r.alloc_sites][:1] == [3]
    assert close_to(sites[3].size_mb, 40) and sites[3].text == "a = np.ones(40 * 2**20, dtype=np.uint8)"
    assert close_to(sites[5].size_mb, 8e6 / MB)
    assert 4 in sites and not any(s.failed for s in r.alloc_sites)
    assert r.alloc_sites == sorted(r.alloc_sites, key=lambda s: -s.size_mb)
    assert not r.worker_replaced   # tracing leaves the worker pristine


def test_alloc_sites_at_the_failure(small):
    code = ("import numpy as np\n"
            "def grow(n):\n"
            "    return np.ones(n, dtype=np.uint8)\n"
            "def transform(g):\n"
            "    keep = grow(100 * 2**20)\n"
            "    more = np.ones(2**31, dtype=np.uint8)\n"
            "    return g\n")
    r = run1(small, code, trace_memory=True)
    assert r.status is Status.MEMORY_LIMIT
    sites = {s.line: s for s in r.alloc_sites}
    assert close_to(sites[3].size_mb, 100) and not sites[3].failed   # charged to the innermost program line
    assert sites[6].failed


def test_untraced_jobs_have_no_sites(big):
    assert run1(big, numpy_touch(10)).alloc_sites == []
