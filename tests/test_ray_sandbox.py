"""RaySandbox on a real Ray cluster on loopback: one head (no CPUs) and two one-CPU nodes, shared by the module.

Every job here is distinct (its program returns its own index as digits) and de-duplication is off, so "one
right result per job" means every job really ran and its result went to the right index.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from arc_sandbox import Job, Limits, RaySandbox, Sandbox, SandboxError, Status, Task
from arc_sandbox.distributed import RAY_MISSING
from arc_sandbox.testing import grids

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"   # before Ray starts: every address is 127.0.0.1
try:
    import ray
    from ray.cluster_utils import Cluster
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed (pip install 'arc-sandbox[ray]')")
LIMITS = Limits(timeout_s=2.0, memory_mb=256)
NODE = dict(num_cpus=1, object_store_memory=80 * 2**20)
OPTIONS = dict(limits=LIMITS, dedupe=False, node_wait_s=20, stall_timeout_s=30)


def digits(i: int) -> list[list[int]]:
    return [[i // 100 % 10, i // 10 % 10, i % 10]]


def job(i: int, sleep: float = 0.0) -> Job:
    code = f"import time\ndef transform(g):\n    time.sleep({sleep})\n    return {digits(i)}"
    return Job(code, [[[0]]], key=f"job-{i}")


def is_template(cmdline: list[str]) -> bool:
    """``python -m arc_sandbox[.layer].template FD``: the Sandbox's template process."""
    module = cmdline[cmdline.index("-m") + 1] if "-m" in cmdline else ""
    return module.startswith("arc_sandbox.") and module.endswith(".template")


def assert_one_right_result_each(results, n: int) -> None:
    assert sorted(r.index for r in results) == list(range(n))   # none missing, none twice
    for r in results:
        assert r.status is Status.OK, (r.index, r.status, r.error_message)
        np.testing.assert_array_equal(r.outputs[0], digits(r.index))
        assert r.key == f"job-{r.index}"


@pytest.fixture(scope="module")
def cluster():
    if ray is None:
        pytest.skip("ray is not installed")
    c = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, object_store_memory=80 * 2**20,
                                                          include_dashboard=False))
    for _ in range(2):
        c.add_node(**NODE)
    ray.init(address=c.address)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


def cpu_nodes(cluster) -> list:
    return [n for n in cluster.worker_nodes]


def with_two_nodes(cluster) -> None:
    """Tests that remove nodes run late, but a test selected alone still gets its two nodes."""
    while len(cluster.worker_nodes) < 2:
        cluster.add_node(**NODE)
    cluster.wait_for_nodes()


# -- without a cluster ----------------------------------------------------------------------
def test_importing_arc_sandbox_does_not_import_ray():
    code = ("import sys, arc_sandbox, arc_sandbox.distributed; arc_sandbox.RaySandbox; "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    # Ray is installed here: a None entry in sys.modules makes `import ray` fail as it does without it.
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'arc-sandbox\[ray\]'"):
        RaySandbox()
    assert "pip install 'arc-sandbox[ray]'" in RAY_MISSING


@needs_ray
@pytest.mark.parametrize("address, error", [("127.0.0.1:1", "no Ray cluster at 127.0.0.1:1"),
                                            ("no-port-here", "expected 'auto', 'host:port'")])
def test_a_wrong_address_fails_at_once_with_a_clear_error(address, error):
    # A fresh interpreter: this one is already connected to the test cluster (and would use that connection).
    code = f"from arc_sandbox import RaySandbox\nRaySandbox({address!r})"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert error in proc.stderr
    assert time.monotonic() - started < 60   # not Ray's minutes of retries


@needs_ray
@pytest.mark.parametrize("option, value", [("workers_per_node", 0), ("chunk_size", -1), ("max_inflight", 1.5),
                                           ("max_attempts", True)])
def test_bad_options_are_named(option, value):
    with pytest.raises(ValueError, match=option):
        RaySandbox(**{option: value})


# -- on the cluster ---------------------------------------------------------------------------
@needs_ray
def test_run_returns_one_right_result_per_job_in_job_order(cluster):
    with_two_nodes(cluster)
    jobs = [job(i) for i in range(120)] + ["not a job", Job("def transform(g)\n    return g", [[[1]]], key="bad")]
    with RaySandbox(**OPTIONS) as sb:
        assert len(sb.nodes) == 2 and sb.workers == 2
        results = sb.run(jobs)
        stats = sb.stats
    assert [r.index for r in results] == list(range(len(jobs)))
    assert_one_right_result_each(results[:120], 120)
    assert results[120].status is Status.INVALID_JOB
    assert results[121].status is Status.SYNTAX_ERROR and results[121].key == "bad"
    assert stats.programs == len(jobs) and stats.nodes == 2 and stats.workers_started >= 2
    assert stats.actors_lost == 0 and stats.jobs_resubmitted == 0
    assert stats.duplicates_dropped <= stats.jobs_copied   # only copies made at the end can come back twice


@needs_ray
def test_imap_streams_results_as_they_finish_and_pulls_jobs_lazily(cluster):
    with_two_nodes(cluster)
    pulled = []

    def source():
        for i in range(400):
            pulled.append(i)
            yield job(i, sleep=1.5 if i == 0 else 0.0)   # well inside the 2 s limit, well after the others

    cap = 2 * 8 * 2   # max_inflight chunks of chunk_size jobs on each of 2 nodes
    with RaySandbox(chunk_size=8, max_inflight=2, **OPTIONS) as sb:
        results, ahead = [], 0
        for result in sb.imap(source()):
            ahead = max(ahead, len(pulled) - len(results))
            results.append(result)
    assert_one_right_result_each(results, 400)
    assert results[0].index != 0 and [r.index for r in results] != sorted(r.index for r in results)
    # Jobs taken from the generator but not yet answered: those in flight (at most the cap) and those whose
    # results arrived in the last round (at most the cap again), never the whole generator.
    assert ahead <= 2 * cap


@needs_ray
def test_the_end_of_a_run_copies_queued_jobs_to_an_idle_node_and_keeps_one_result_each(cluster):
    with_two_nodes(cluster)
    # 40 jobs over two nodes: one node gets jobs 0-19 (slow), the other 20-39 (fast) and then idles while the
    # slow one still has a queue; copies of those queued jobs go to the idle node, first result wins.
    jobs = [job(i, sleep=0.15 if i < 20 else 0.0) for i in range(40)]
    with RaySandbox(**OPTIONS) as sb:
        results = list(sb.imap(jobs))
        stats = sb.stats
    assert_one_right_result_each(results, 40)
    assert stats.jobs_copied > 0 and stats.duplicates_dropped <= stats.jobs_copied
    assert stats.programs == 40 and stats.actors_lost == 0


@needs_ray
def test_made_in_a_process_holding_torch_with_workers_from_the_template(cluster):
    torch = pytest.importorskip("torch")
    with_two_nodes(cluster)
    weights = torch.nn.Linear(4, 4)(torch.ones(2, 4)).sum()   # torch initialised, threads started
    with RaySandbox(**OPTIONS) as sb:
        results = sb.run([job(i) for i in range(40)])
        for info in sb.nodes.values():
            # The actor's only children are its Sandbox's template processes: no worker forked from Ray's.
            children = [c.cmdline() for c in psutil.Process(info.actor_pid).children()]
            assert children and all(is_template(cmdline) for cmdline in children), children
    assert_one_right_result_each(results, 40)
    assert torch.isfinite(weights)


@needs_ray
def test_a_node_that_joins_is_used_and_its_loss_mid_run_loses_no_job(cluster):
    with_two_nodes(cluster)
    results, removed_at = [], None

    def source():   # jobs keep coming until well after the node that joined was removed (however slow it starts)
        i = 0
        while i < 5000 and (removed_at is None or i < removed_at + 200):
            yield job(i, sleep=0.03)
            i += 1

    with RaySandbox(**OPTIONS) as sb:
        assert len(sb.nodes) == 2
        extra = cluster.add_node(**NODE)
        for result in sb.imap(source()):
            results.append(result)
            if removed_at is None and len(sb.nodes) == 3 and len(results) % 50 == 0:
                cluster.remove_node(extra)   # it holds chunks of jobs now
                removed_at = len(results)
        stats = sb.stats
    assert removed_at is not None, "the node that joined was never used"
    assert_one_right_result_each(results, len(results))
    assert stats.actors_lost == 1 and stats.jobs_resubmitted >= 1 and stats.infra_errors == 0


@needs_ray
def test_a_killed_actor_loses_no_job_leaves_no_process_and_is_replaced(cluster):
    with_two_nodes(cluster)
    with RaySandbox(**OPTIONS) as sb:
        victim = next(iter(sb.nodes.values())).actor_pid
        sandbox_processes = psutil.Process(victim).children(recursive=True)
        results = []
        for result in sb.imap([job(i, sleep=0.01) for i in range(300)]):
            results.append(result)
            if len(results) == 20:
                os.kill(victim, signal.SIGKILL)
        assert_one_right_result_each(results, 300)
        assert sb.stats.actors_lost == 1 and sb.stats.jobs_resubmitted >= 1
        deadline = time.monotonic() + 60
        while len(sb.nodes) < 2 and time.monotonic() < deadline:   # the replacement starts on the same node
            assert sb.run([job(7)])[0].outputs[0].tolist() == digits(7)
        assert len(sb.nodes) == 2 and victim not in [i.actor_pid for i in sb.nodes.values()]
        assert_one_right_result_each(sb.run([job(i) for i in range(50)]), 50)
    psutil.wait_procs(sandbox_processes, timeout=10)
    assert not [p.pid for p in sandbox_processes if p.is_running()], "the dead actor's template or workers live on"


CLI = "import sys; from arc_sandbox.cli import main; sys.exit(main(sys.argv[1:]))"   # `arc-sandbox`, this checkout


@needs_ray
def test_arc_sandbox_run_with_ray_gives_the_records_of_a_local_run(cluster, tmp_path):
    with_two_nodes(cluster)
    records = {}
    for name, extra in (("local", []), ("ray", ["--ray", cluster.address])):
        out = tmp_path / f"{name}.jsonl"
        proc = subprocess.run([sys.executable, "-c", CLI, "run", "--no-progress", "--workers", "1", "--out", str(out),
                               *extra], timeout=180, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        records[name] = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records["ray"]) == len(records["local"]) > 0
    key = lambda r: (r["task_id"], r["sample"])   # noqa: E731
    for got, want in zip(sorted(records["ray"], key=key), sorted(records["local"], key=key)):
        assert (got["task_id"], got["sample"], got["status"], got["outputs"]) == \
               (want["task_id"], want["sample"], want["status"], want["outputs"])


@needs_ray
def test_sandbox_reward_on_a_ray_sandbox_gives_the_local_rewards(cluster):
    from arc_rl.data import task_to_json
    from arc_rl.rewards import SandboxReward
    with_two_nodes(cluster)
    flip = task_to_json(Task.from_dict({"train": [{"input": [[1, 2, 3]], "output": [[3, 2, 1]]}],
                                        "test": [{"input": [[7, 8]], "output": [[8, 7]]}]}, id="flip"))
    completions = [f"```python\n{code}\n```" for code in (
        "import numpy as np\ndef transform(g):\n    return np.fliplr(g)", "def transform(g):\n    return g",
        "def transform(g):\n    return 1 / 0", "def transform(g)\n    return g")] * 5
    made = []

    def factory():
        made.append(RaySandbox(**OPTIONS))
        return made[-1]

    with SandboxReward("arc-v1", sandbox=factory) as remote, \
            SandboxReward("arc-v1", workers=1, limits=LIMITS, dedupe=False) as local:
        for _ in range(2):   # two steps on the same RaySandbox
            got = remote(completions=completions, task=[flip] * len(completions))
            assert got == local(completions=completions, task=[flip] * len(completions))
            assert got[0] == 10.0 and got[2] == 0.0
        assert len(made) == 1 and made[0].stats.programs == 2 * len(completions)
    with pytest.raises(SandboxError, match="closed"):   # closed with the reward
        made[0].run([job(1)])


@needs_ray
def test_arc_rl_infer_evaluates_on_a_ray_sandbox_like_on_a_local_one(cluster):
    pytest.importorskip("yaml")
    from arc_rl.cli import build_parser
    from arc_rl.config import InferConfig, from_namespace
    from arc_rl.infer import Prompt, evaluate
    from arc_sandbox import Augmentation
    with_two_nodes(cluster)
    args = ["infer", "--base-model-path", "m", "--dataset-path", "d"]
    assert from_namespace(InferConfig, build_parser().parse_args(args + ["--ray"])).ray == "auto"
    assert from_namespace(InferConfig, build_parser().parse_args(args + ["--ray", "10.0.0.1:6379"])).ray == "10.0.0.1:6379"
    assert from_namespace(InferConfig, build_parser().parse_args(args)).ray is None
    task = Task.from_dict({"train": [{"input": [[1, 2], [3, 4]], "output": [[2, 1], [4, 3]]}],
                           "test": [{"input": [[5, 6]], "output": [[6, 5]]}]}, id="t")
    turn = Augmentation(dihedral=1)
    prompts = [Prompt(task, task, None, ""), Prompt(task, turn.apply_task(task), turn, "")]
    texts = ["def transform(g):\n    return g[:, ::-1]", "def transform(g):\n    return g", "no code"]
    by_mode = {}
    for address in (None, cluster.address):
        config = InferConfig(base_model_path="m", dataset_path="d", n_jobs=1, ray=address)
        by_mode[address] = evaluate(prompts, [texts, texts], config)
    local, remote = by_mode[None], by_mode[cluster.address]
    assert [(p.status, p.outputs) for p in remote["t"]] == [(p.status, p.outputs) for p in local["t"]]
    assert remote["t"][0].status == "ok" and remote["t"][0].outputs == [[[2, 1], [4, 3]], [[6, 5]]]


@needs_ray
def test_a_hung_actor_is_given_up_after_the_stall_timeout_and_its_jobs_run_elsewhere(cluster):
    with_two_nodes(cluster)
    with RaySandbox(**{**OPTIONS, "stall_timeout_s": 4}) as sb:
        victim = next(iter(sb.nodes.values())).actor_pid
        results = []
        for result in sb.imap([job(i, sleep=0.02) for i in range(200)]):
            results.append(result)
            if len(results) == 10:
                os.kill(victim, signal.SIGSTOP)   # alive but silent, like a node cut off the network
        stats = sb.stats
    assert_one_right_result_each(results, 200)
    assert stats.actors_lost == 1 and stats.jobs_resubmitted >= 1 and stats.infra_errors == 0
    try:   # and the silent actor was killed (Ray first asks it to exit, then kills it)
        psutil.wait_procs([psutil.Process(victim)], timeout=60)
    except psutil.NoSuchProcess:
        pass
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE


HOSTILE = [
    "def transform(g):\n    return g",
    "def transform(g):\n    return [[int(x) % 10 for x in row[::-1]] for row in g]",
    "def transform(g)\n    return g",
    "def transform(g):\n    raise ValueError('nope')",
    "def transform(g):\n    return g * 11",
    "import os\ndef transform(g):\n    os._exit(3)",
    "def main(input_grid):\n    print('x' * 100000)\n    return input_grid",
    "no code at all",
    "def other(g):\n    return g",
]


@needs_ray
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(st.tuples(st.sampled_from(HOSTILE), st.lists(grids(max_side=6), min_size=1, max_size=3)),
                          st.sampled_from([42, None, ("only text",), (b"bytes", [[[1]]]), ("x", [threading.Lock()])])),
                min_size=1, max_size=25))
def test_same_results_as_a_local_sandbox_on_generated_hostile_jobs(ray_sandbox, local_sandbox, jobs):
    remote, local = ray_sandbox.run(jobs), local_sandbox.run(jobs)
    assert [r.index for r in remote] == list(range(len(jobs)))
    for r, want in zip(remote, local):
        assert r.status is want.status, (r.index, r.error_message, want.error_message)
        assert r.grid_statuses == want.grid_statuses
        for got, expected in zip(r.outputs, want.outputs):
            assert (got is None) == (expected is None)
            if got is not None:
                np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def ray_sandbox(cluster):
    with_two_nodes(cluster)
    with RaySandbox(**OPTIONS) as sb:
        yield sb


@pytest.fixture(scope="module")
def local_sandbox():
    with Sandbox(workers=1, limits=LIMITS, dedupe=False) as sb:
        yield sb


@needs_ray
def test_all_nodes_lost_gives_each_unfinished_job_an_infrastructure_status(cluster):
    with_two_nodes(cluster)
    with RaySandbox(**{**OPTIONS, "node_wait_s": 3}) as sb:
        results = []
        started = time.monotonic()
        for result in sb.imap([job(i, sleep=0.02) for i in range(300)]):
            results.append(result)
            if len(results) == 10:
                for node in list(cluster.worker_nodes):
                    cluster.remove_node(node)
        stats = sb.stats
    assert time.monotonic() - started < 90   # it ends: no hang waiting for nodes that will not come
    assert sorted(r.index for r in results) == list(range(300))
    done = [r for r in results if r.status is Status.OK]
    lost = [r for r in results if r.status is not Status.OK]
    assert len(done) >= 10 and lost   # what finished is kept
    for r in done:
        np.testing.assert_array_equal(r.outputs[0], digits(r.index))
    assert all(r.status is Status.INFRA_ERROR and r.key == f"job-{r.index}" and r.outputs == [None] for r in lost)
    assert all("no usable node" in r.error_message for r in lost)
    assert stats.infra_errors == len(lost)
    # And a RaySandbox made on a cluster with no CPU node says so instead of waiting forever.
    with pytest.raises(SandboxError, match="no node could run programs"):
        RaySandbox(**{**OPTIONS, "node_wait_s": 2})
