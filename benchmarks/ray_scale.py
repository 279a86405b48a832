"""RaySandbox on a loopback Ray cluster against a local Sandbox with the same total workers, in one script.

Measures, as ratios (docs/distributed.md):
- throughput on the realistic mix of ``arc-sandbox bench`` (arc_sandbox/benchmark.py), RaySandbox on N nodes x C
  CPUs vs ``Sandbox(workers=N*C)``, runs interleaved (local, ray, local, ray...), medians;
- scaling over 1 -> 2 -> 4 ... nodes (nodes added to the same cluster), as a fraction of linear;
- the Ray layer's overhead per program, from trivial programs (identity on a 3x3 grid) through both;
- the driver's memory over many trivial programs streamed through ``imap`` (RSS after a warm-up vs at the end).

    python benchmarks/ray_scale.py --nodes 2 --cpus 1 --memory-programs 20000            # a 2-core machine
    python benchmarks/ray_scale.py --nodes 4 --cpus 4 --memory-programs 200000 --out r.json   # 16 cores
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")   # loopback: every Ray address is 127.0.0.1

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from arc_sandbox import Limits, RaySandbox, Sandbox  # noqa: E402
from arc_sandbox.benchmark import make_jobs  # noqa: E402

STORE = 100 * 2**20   # object store per node: results stream through small batches, little is stored
TRIVIAL = ("def transform(g):\n    return g", [np.ones((3, 3), dtype=int)])


def timed(sandbox, jobs) -> float:
    started = time.perf_counter()
    for _ in sandbox.imap(jobs):
        pass
    return time.perf_counter() - started


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def scaling(cluster: Cluster, counts: list[int], cpus: int, mix: list, reps: int, limits: Limits) -> dict:
    """Programs per second on k nodes, k growing: the same jobs, a fresh RaySandbox on each cluster size."""
    out = {}
    for k in counts:
        while len(cluster.worker_nodes) < k:
            cluster.add_node(num_cpus=cpus, object_store_memory=STORE)
        cluster.wait_for_nodes()
        with RaySandbox(workers_per_node=cpus, limits=limits, dedupe=False) as sb:
            assert len(sb.nodes) == k, f"{len(sb.nodes)} nodes in use, {k} expected"
            timed(sb, mix[: 50 * k * cpus])   # warm-up
            wall = statistics.median(timed(sb, mix) for _ in range(reps))
        out[k] = round(len(mix) / wall, 1)
        print(f"  {k} node(s) x {cpus} CPUs: {out[k]} programs/s", flush=True)
    base = out[counts[0]] / counts[0]
    return {"per_s": out, "fraction_of_linear": {k: round(v / (base * k), 3) for k, v in out.items()}}


def same_workers(nodes: int, cpus: int, mix: list, trivial: list, reps: int, limits: Limits) -> dict:
    """RaySandbox on every node vs a local Sandbox with as many workers, interleaved runs, medians."""
    workers = nodes * cpus
    with Sandbox(workers=workers, limits=limits, dedupe=False) as local, \
            RaySandbox(workers_per_node=cpus, limits=limits, dedupe=False) as remote:
        assert remote.workers == workers, f"{remote.workers} workers on the cluster, {workers} expected"
        for sb in (local, remote):
            timed(sb, mix[: 50 * workers])
            timed(sb, trivial[: 500 * workers])
        walls = {"local_mix": [], "ray_mix": [], "local_trivial": [], "ray_trivial": []}
        for _ in range(reps):
            walls["local_mix"].append(timed(local, mix))
            walls["ray_mix"].append(timed(remote, mix))
            walls["local_trivial"].append(timed(local, trivial))
            walls["ray_trivial"].append(timed(remote, trivial))
        stats = remote.stats
    wall = {k: statistics.median(v) for k, v in walls.items()}
    extra_s = (wall["ray_trivial"] - wall["local_trivial"]) / len(trivial)
    return {
        "workers": workers,
        "mix": {"programs": len(mix), "local_per_s": round(len(mix) / wall["local_mix"], 1),
                "ray_per_s": round(len(mix) / wall["ray_mix"], 1),
                "ratio": round(wall["local_mix"] / wall["ray_mix"], 3)},
        "trivial": {"programs": len(trivial), "local_per_s": round(len(trivial) / wall["local_trivial"], 1),
                    "ray_per_s": round(len(trivial) / wall["ray_trivial"], 1),
                    "ratio": round(wall["local_trivial"] / wall["ray_trivial"], 3),
                    "ray_overhead_us_per_program": round(extra_s * 1e6, 1),
                    "ray_overhead_ms_per_program_per_core": round(extra_s * workers * 1e3, 3)},
        "walls_s": {k: [round(x, 3) for x in v] for k, v in walls.items()},
        "ray_stats": {"actors_lost": stats.actors_lost, "jobs_resubmitted": stats.jobs_resubmitted,
                      "workers_started": stats.workers_started},
    }


def driver_memory(cpus: int, n: int, limits: Limits) -> dict:
    with RaySandbox(workers_per_node=cpus, limits=limits, dedupe=False) as sb:
        for _ in sb.imap([TRIVIAL] * 2000):
            pass
        before = rss_mb()
        started = time.perf_counter()
        count = sum(1 for _ in sb.imap(TRIVIAL for _ in range(n)))
        wall = time.perf_counter() - started
        after = rss_mb()
    assert count == n
    return {"programs": n, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "growth_mb": round(after - before, 2), "per_s": round(n / wall, 1)}


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=2, help="nodes of the loopback cluster (default 2)")
    p.add_argument("--cpus", type=int, default=1, help="CPUs (and Sandbox workers) per node (default 1)")
    p.add_argument("--programs", type=int, default=2000, help="programs of the realistic mix per run (default 2000)")
    p.add_argument("--trivial", type=int, default=4000, help="trivial programs per overhead run (default 4000)")
    p.add_argument("--reps", type=int, default=2, help="interleaved repetitions; medians are reported (default 2)")
    p.add_argument("--memory-programs", type=int, default=20000, help="programs streamed for the driver's memory")
    p.add_argument("--out", default=None, help="write the report as JSON here too")
    args = p.parse_args()
    limits = Limits(timeout_s=1.0, memory_mb=512)
    counts = [k for k in (1, 2, 4, 8, 16) if k <= args.nodes]
    report: dict = {"nodes": args.nodes, "cpus_per_node": args.cpus, "host_cpus": os.cpu_count(),
                    "load_avg_at_start": [round(x, 2) for x in os.getloadavg()], "ray": ray.__version__,
                    "reps": args.reps}
    mix, trivial = make_jobs(args.programs), [TRIVIAL] * args.trivial
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, object_store_memory=STORE,
                                                                include_dashboard=False))
    try:
        ray.init(address=cluster.address)
        print(f"scaling on the realistic mix ({args.programs} programs):", flush=True)
        report["scaling"] = scaling(cluster, counts, args.cpus, mix, args.reps, limits)
        print("same total workers, interleaved:", flush=True)
        report["same_workers"] = same_workers(args.nodes, args.cpus, mix, trivial, args.reps, limits)
        print("driver memory:", flush=True)
        report["driver_memory"] = driver_memory(args.cpus, args.memory_programs, limits)
    finally:
        ray.shutdown()
        cluster.shutdown()
    report["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(summary(report))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


def summary(r: dict) -> str:
    same, scale, mem = r["same_workers"], r["scaling"], r["driver_memory"]
    top = max(scale["fraction_of_linear"], key=int)
    return "\n".join([
        f"{r['nodes']} nodes x {r['cpus_per_node']} CPUs on a {r['host_cpus']}-CPU host (Ray {r['ray']})",
        f"realistic mix: RaySandbox {same['mix']['ray_per_s']}/s vs Sandbox(workers={same['workers']}) "
        f"{same['mix']['local_per_s']}/s -> ratio {same['mix']['ratio']} (target >= 0.9)",
        f"scaling 1 -> {top} nodes: {scale['per_s']} programs/s, {scale['fraction_of_linear'][top]} of linear "
        "(target >= 0.85)",
        f"trivial programs: ratio {same['trivial']['ratio']}; Ray layer overhead "
        f"{same['trivial']['ray_overhead_us_per_program']} us per program "
        f"({same['trivial']['ray_overhead_ms_per_program_per_core']} ms of a core)",
        f"driver RSS over {mem['programs']} programs through imap: {mem['rss_before_mb']} -> {mem['rss_after_mb']} MB "
        f"(growth {mem['growth_mb']} MB, target < 50) at {mem['per_s']}/s",
    ])


if __name__ == "__main__":
    main()
