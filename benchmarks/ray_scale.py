"""RaySandbox on a loopback Ray cluster against a local Sandbox with the same total workers, in one script.

Measures, as ratios (docs/distributed.md):
- throughput on the realistic mix of ``arc-sandbox bench`` (arc_sandbox/benchmark.py), RaySandbox on k nodes x C
  CPUs vs ``Sandbox(workers=k*C)``, runs interleaved (local, ray, local, ray...), medians, for k = 1, 2, 4 ... N
  (nodes added to the same cluster); scaling over k as a fraction of linear, for both (on one host, the local
  Sandbox's own scaling shows what the host allows);
- the Ray layer's overhead per program, from trivial programs (identity on a 3x3 grid) through both at k = N;
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
from arc_sandbox.cli.bench import make_jobs  # noqa: E402

STORE = 100 * 2**20   # object store per node: results stream through small batches, little is stored
TRIVIAL = ("def transform(g):\n    return g", [np.ones((3, 3), dtype=int)])


def timed(sandbox, jobs) -> float:
    started = time.perf_counter()
    for _ in sandbox.imap(jobs):
        pass
    return time.perf_counter() - started


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def scaling(cluster: Cluster, counts: list[int], cpus: int, mix: list, trivial: list, reps: int,
            limits: Limits) -> dict:
    """At each cluster size k (nodes added to the same cluster): a fresh RaySandbox on k nodes and a local
    Sandbox with as many workers, on the same jobs, runs interleaved, medians; at the largest size also the
    trivial programs (the Ray layer's overhead per program)."""
    out: dict = {"ray_per_s": {}, "local_per_s": {}, "ratio": {}}
    for k in counts:
        while len(cluster.worker_nodes) < k:
            cluster.add_node(num_cpus=cpus, object_store_memory=STORE)
        cluster.wait_for_nodes()
        workers = k * cpus
        with Sandbox(workers=workers, limits=limits, dedupe=False) as local, \
                RaySandbox(workers_per_node=cpus, limits=limits, dedupe=False) as remote:
            assert len(remote.nodes) == k and remote.workers == workers, (remote.nodes, remote.workers)
            for sb in (local, remote):   # warm-up
                timed(sb, mix[: 50 * workers])
            walls = {"local": [], "ray": []}
            for _ in range(reps):
                walls["local"].append(timed(local, mix))
                walls["ray"].append(timed(remote, mix))
            out["ray_per_s"][k] = round(len(mix) / statistics.median(walls["ray"]), 1)
            out["local_per_s"][k] = round(len(mix) / statistics.median(walls["local"]), 1)
            out["ratio"][k] = round(statistics.median(walls["local"]) / statistics.median(walls["ray"]), 3)
            print(f"  {k} node(s) x {cpus} CPUs: RaySandbox {out['ray_per_s'][k]}/s, Sandbox(workers={workers}) "
                  f"{out['local_per_s'][k]}/s -> ratio {out['ratio'][k]}", flush=True)
            if k == counts[-1]:
                out["walls_s"] = {name: [round(x, 3) for x in v] for name, v in walls.items()}
                out["trivial"] = overhead(local, remote, trivial, reps, workers)
                stats = remote.stats
                out["ray_stats"] = {"actors_lost": stats.actors_lost, "jobs_copied": stats.jobs_copied,
                                    "duplicates_dropped": stats.duplicates_dropped,
                                    "workers_started": stats.workers_started}
    one = counts[0]
    for name in ("ray", "local"):
        per_s = out[f"{name}_per_s"]
        out[f"{name}_fraction_of_linear"] = {k: round(v / (per_s[one] / one * k), 3) for k, v in per_s.items()}
    return out


def overhead(local, remote, trivial: list, reps: int, workers: int) -> dict:
    for sb in (local, remote):
        timed(sb, trivial[: 500 * workers])
    walls = {"local": [], "ray": []}
    for _ in range(reps):
        walls["local"].append(timed(local, trivial))
        walls["ray"].append(timed(remote, trivial))
    wall = {name: statistics.median(v) for name, v in walls.items()}
    extra_s = (wall["ray"] - wall["local"]) / len(trivial)
    return {"programs": len(trivial), "local_per_s": round(len(trivial) / wall["local"], 1),
            "ray_per_s": round(len(trivial) / wall["ray"], 1), "ratio": round(wall["local"] / wall["ray"], 3),
            "ray_overhead_us_per_program": round(extra_s * 1e6, 1),
            "ray_overhead_ms_per_program_per_core": round(extra_s * workers * 1e3, 3)}


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
    p.add_argument("--memory-programs", type=int, default=20000,
                   help="programs streamed for the driver's memory (0: skip)")
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
        print(f"realistic mix ({args.programs} programs), RaySandbox vs a local Sandbox with as many workers:",
              flush=True)
        report["scaling"] = scaling(cluster, counts, args.cpus, mix, trivial, args.reps, limits)
        if args.memory_programs:
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
    scale = r["scaling"]
    top = max(scale["ratio"])
    triv = scale["trivial"]
    lines = [
        f"{r['nodes']} nodes x {r['cpus_per_node']} CPUs on a {r['host_cpus']}-CPU host (Ray {r['ray']})",
        f"realistic mix on {top} nodes: RaySandbox {scale['ray_per_s'][top]}/s vs Sandbox(workers="
        f"{top * r['cpus_per_node']}) {scale['local_per_s'][top]}/s -> ratio {scale['ratio'][top]} (target >= 0.9)",
        f"ratio at each size: {scale['ratio']}",
        f"scaling 1 -> {top} nodes: RaySandbox {scale['ray_fraction_of_linear'][top]} of linear (target >= 0.85); "
        f"a local Sandbox going from {r['cpus_per_node']} to {top * r['cpus_per_node']} workers on this host: "
        f"{scale['local_fraction_of_linear'][top]}",
        f"trivial programs: ratio {triv['ratio']}; Ray layer overhead {triv['ray_overhead_us_per_program']} us "
        f"per program ({triv['ray_overhead_ms_per_program_per_core']} ms of a core)",
    ]
    if "driver_memory" in r:
        mem = r["driver_memory"]
        lines.append(f"driver RSS over {mem['programs']} programs through imap: {mem['rss_before_mb']} -> "
                     f"{mem['rss_after_mb']} MB (growth {mem['growth_mb']} MB, target < 50) at {mem['per_s']}/s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
