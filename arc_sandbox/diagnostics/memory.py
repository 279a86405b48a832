"""Where memory goes in generated programs, and what limit to use (``arc-sandbox diagnose`` prints it).

:func:`diagnose` reads a responses file (runs it, sampling the executor's own memory as it goes) or a
results file (uses its measured peaks; ``rerun`` runs its programs again), re-runs the programs that hit the
memory limit and those that used the most with allocation tracing (:func:`trace_allocations`), and writes
``memory.md``, ``memory.json`` and ``memory.png`` (needs matplotlib). A line of the input that can't be used,
or a program that can't be re-run, is reported in the ``problems`` section; the rest is still produced.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import psutil

from arc_sandbox.executor.limits import Limits
from arc_sandbox.executor.results import AllocSite, Job, ProgramResult, Status, as_job
from arc_sandbox.executor.pool import Sandbox

CANDIDATE_LIMITS_MB = (64, 128, 256, 512, 1024, 2048, 4096, 8192)
# RLIMIT_AS counts virtual memory, which runs ahead of the resident peak measured here
# (allocator slack, untouched pages): a limit should leave this factor over the peaks it keeps.
HEADROOM = 1.25
MAX_LOST_FRACTION = 0.001     # the recommended limit loses at most 0.1 % of valid programs
_HEALTH_EVERY_S = 0.5
_GROWING_MB = 16.0            # fitted growth over the run above which memory "grows"


@dataclass
class ProgramMemory:
    """One program's row in the report."""

    task_id: str
    sample: int
    status: Status
    peak_memory_mb: float
    code: str
    error_type: str | None = None
    alloc_sites: list[AllocSite] = field(default_factory=list)
    notes: str | None = None        # what the traced re-run did (or why there was none), worker notes


@dataclass
class HealthSample:
    t_s: float
    programs: int
    parent_rss_mb: float
    worker_rss_mb: float      # the largest worker (workers are replaced now and then)
    workers_total_mb: float


@dataclass
class Health:
    samples: list[HealthSample]
    parent_growth_mb: float   # robust (Theil-Sen) linear fit over the run, first to last sample
    worker_growth_mb: float
    verdict: str


@dataclass
class LimitCost:
    limit_mb: float
    lost_valid: int           # OK programs whose measured peak is above this limit
    lost_valid_pct: float


@dataclass
class MemoryReport:
    programs: int
    measured: int                       # programs with a usable peak
    limit_mb: float
    hit_limit: int                      # status MEMORY_LIMIT (allocation failed or host guard)
    guard_kills: int | None             # of those, by the host memory guard (None: not run here)
    status_counts: dict[str, int]
    percentiles_mb: dict[str, float]
    histogram: list[tuple[float, float, int]]   # (from MB, to MB, programs)
    limit_costs: list[LimitCost]
    recommended_limit_mb: float | None
    recommendation: str
    top: list[ProgramMemory]            # highest peaks
    limit_hits: list[ProgramMemory]     # programs that hit the limit
    health: Health | None
    problems: list[str]
    elapsed_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, default=str)

    def to_markdown(self) -> str:
        return _markdown(self)


# -- running, with the executor watched ----------------------------------------------------
def run_with_health(sandbox: Sandbox, jobs: Sequence[Job], every_s: float = _HEALTH_EVERY_S,
                    ) -> tuple[list[ProgramResult], list[HealthSample]]:
    """Run ``jobs``; sample the parent's and workers' resident memory every ``every_s`` seconds."""
    results: list[ProgramResult | None] = [None] * len(jobs)
    parent = psutil.Process(os.getpid())
    t0 = time.monotonic()
    samples = [_sample(parent, sandbox, 0.0, 0)]
    next_at = t0 + every_s
    done = 0
    for result in sandbox.imap(jobs):
        result.outputs = []   # not needed here; don't let them count as the parent's growth
        results[result.index] = result
        done += 1
        now = time.monotonic()
        if now >= next_at:
            samples.append(_sample(parent, sandbox, now - t0, done))
            next_at = now + every_s
    samples.append(_sample(parent, sandbox, time.monotonic() - t0, done))
    return results, samples


def _sample(parent: psutil.Process, sandbox: Sandbox, t_s: float, programs: int) -> HealthSample:
    sizes = []
    for pid in sandbox.worker_pids():
        try:
            sizes.append(psutil.Process(pid).memory_info().rss / 2**20)
        except psutil.Error:
            pass   # retired between the listing and the look
    return HealthSample(round(t_s, 3), programs, round(parent.memory_info().rss / 2**20, 1),
                        round(max(sizes, default=0.0), 1), round(sum(sizes), 1))


def health_of(samples: list[HealthSample]) -> Health:
    """Fit memory against programs run; "growing" past ``_GROWING_MB`` over the run."""
    if len(samples) < 4 or samples[-1].programs == samples[0].programs:
        return Health(samples, 0.0, 0.0, "too short to tell (fewer than 4 samples)")
    from scipy.stats import theilslopes

    x = np.array([s.programs for s in samples], dtype=float)
    span = x[-1] - x[0]
    growth = {}
    for name in ("parent_rss_mb", "worker_rss_mb"):
        y = np.array([getattr(s, name) for s in samples])
        growth[name] = float(theilslopes(y, x)[0] * span)
    growing = [name.split("_")[0] for name, g in growth.items() if g > _GROWING_MB]
    verdict = ("flat" if not growing else
               "growing: " + ", ".join(f"{n} +{growth[n + '_rss_mb']:.0f} MB over the run" for n in growing))
    return Health(samples, round(growth["parent_rss_mb"], 1), round(growth["worker_rss_mb"], 1), verdict)


# -- allocation sites -------------------------------------------------------------------------
def pick_for_tracing(results: Sequence[ProgramResult | None], top: int) -> list[int]:
    """Indices of up to ``top`` programs that hit the limit and the ``top`` others with the highest peaks."""
    ran = [(i, r) for i, r in enumerate(results) if r is not None and r.code]
    by_peak = sorted(ran, key=lambda item: -item[1].peak_memory_mb)
    hits = [i for i, r in by_peak if r.status is Status.MEMORY_LIMIT][:top]
    others = [i for i, r in by_peak if r.status is not Status.MEMORY_LIMIT][:top]
    return hits + others


def trace_allocations(results: Sequence[ProgramResult | None], jobs: Sequence[Job | tuple],
                      sandbox_or_limits: Sandbox | Limits, top: int = 10,
                      indices: Iterable[int] | None = None) -> dict[int, ProgramResult]:
    """Re-run, with allocation tracing, the programs that hit the limit or used the most memory.

    ``results`` line up with ``jobs`` (a ``Sandbox.run`` of them). Returns ``{index: traced
    result}``; its ``alloc_sites`` name the program lines that held the most memory. Given
    ``Limits``, a sandbox is started with the same memory limit and room for tracing's slowness
    (5x the time, at least 5 s); a given ``Sandbox`` is used as it is.
    """
    chosen = list(indices) if indices is not None else pick_for_tracing(results, top)
    traced_jobs = [dataclasses.replace(as_job(jobs[i]), trace_memory=True) for i in chosen]
    if not traced_jobs:
        return {}
    if isinstance(sandbox_or_limits, Sandbox):
        traced = sandbox_or_limits.run(traced_jobs)
    else:
        limits = dataclasses.replace(sandbox_or_limits, timeout_s=max(5 * sandbox_or_limits.timeout_s, 5.0),
                                     kill_grace_s=max(sandbox_or_limits.kill_grace_s, 5.0))
        with Sandbox(workers=min(len(traced_jobs), len(os.sched_getaffinity(0))), limits=limits) as sb:
            traced = sb.run(traced_jobs)
    return dict(zip(chosen, traced))


# -- the report -------------------------------------------------------------------------------
def build_report(rows: Sequence[ProgramMemory | None], limit_mb: float, *, health: Health | None = None,
                 guard_kills: int | None = None, problems: Sequence[str] = (), top: int = 10) -> MemoryReport:
    """The report from one row per program (None for a program without a usable measurement)."""
    measured = [r for r in rows if r is not None]
    peaks = np.array([r.peak_memory_mb for r in measured], dtype=float)
    valid = np.array([r.peak_memory_mb for r in measured if r.status is Status.OK], dtype=float)
    counts: dict[str, int] = {}
    for r in measured:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    costs = [LimitCost(lim, int((valid > lim).sum()), round(100.0 * (valid > lim).mean(), 3) if valid.size else 0.0)
             for lim in sorted({*CANDIDATE_LIMITS_MB, limit_mb})]
    recommended, why = _recommend(valid, counts.get(Status.MEMORY_LIMIT.value, 0), limit_mb)
    by_peak = sorted(measured, key=lambda r: -r.peak_memory_mb)
    return MemoryReport(
        programs=len(rows), measured=len(measured), limit_mb=limit_mb,
        hit_limit=counts.get(Status.MEMORY_LIMIT.value, 0), guard_kills=guard_kills, status_counts=counts,
        percentiles_mb={f"p{q:g}": round(float(np.percentile(peaks, q)), 2) for q in (50, 90, 99, 99.9, 100)}
        if peaks.size else {},
        histogram=_histogram(peaks), limit_costs=costs, recommended_limit_mb=recommended, recommendation=why,
        top=[r for r in by_peak if r.status is not Status.MEMORY_LIMIT][:top],
        limit_hits=[r for r in by_peak if r.status is Status.MEMORY_LIMIT][:top],
        health=health, problems=list(problems))


def _recommend(valid: np.ndarray, hits: int, limit_mb: float) -> tuple[float | None, str]:
    if not valid.size:
        return None, "no valid (OK) program with a measured peak: nothing to base a limit on"
    needed = valid * HEADROOM
    for lim in CANDIDATE_LIMITS_MB:
        lost = int((needed > lim).sum())
        if lost <= MAX_LOST_FRACTION * valid.size:
            why = (f"the smallest candidate that keeps {HEADROOM:g}x headroom over the peaks of all but "
                   f"{lost} of {valid.size} valid programs (at most {100 * MAX_LOST_FRACTION:g} %)")
            if hits:
                why += (f"; {hits} program(s) hit the {limit_mb:g} MB limit of this run: their needs are "
                        "unknown (they would need more), see the limit hits below")
            return float(lim), why
    return None, f"even {CANDIDATE_LIMITS_MB[-1]} MB loses more than {100 * MAX_LOST_FRACTION:g} % of valid programs"


def _histogram(peaks: np.ndarray) -> list[tuple[float, float, int]]:
    """Power-of-two bins from 'under 1 MB' to the largest peak."""
    if not peaks.size:
        return []
    top = max(1.0, float(peaks.max()))
    edges = [0.0] + [2.0 ** k for k in range(0, int(math.ceil(math.log2(top))) + 1)]
    if edges[-1] <= top:
        edges.append(edges[-1] * 2)
    counts, _ = np.histogram(peaks, bins=edges)
    return [(edges[i], edges[i + 1], int(c)) for i, c in enumerate(counts)]


def _markdown(r: MemoryReport) -> str:
    out = ["# Memory report", ""]
    out.append(f"{r.programs} programs, {r.measured} with a measured peak; memory limit {r.limit_mb:g} MB; "
               f"**{r.hit_limit} hit the limit**" + (f" ({r.guard_kills} by the host memory guard)"
                                                     if r.guard_kills else "") + ".")
    out.append("")
    out.append("Statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(r.status_counts.items(), key=lambda kv: -kv[1])))
    if r.percentiles_mb:
        out.append("Peak percentiles (MB): " + ", ".join(f"{k} {v:g}" for k, v in r.percentiles_mb.items()))
    out += ["", "## Peak memory distribution", "", "```"]
    widest = max((c for _, _, c in r.histogram), default=0)
    for lo, hi, count in r.histogram:
        bar = "#" * (math.ceil(50 * count / widest) if count else 0)
        label = f"< {hi:g} MB" if lo == 0 else f"{lo:g}-{hi:g} MB"
        out.append(f"{label:>16} {count:>8} {bar}")
    out += ["```", "", "## Choosing a limit", "",
            "| limit (MB) | valid programs lost | % of valid |", "|---:|---:|---:|"]
    out += [f"| {c.limit_mb:g} | {c.lost_valid} | {c.lost_valid_pct:g} |" for c in r.limit_costs]
    rec = f"**{r.recommended_limit_mb:g} MB**: " if r.recommended_limit_mb else "**none**: "
    out += ["", f"Recommended: {rec}{r.recommendation}.", ""]
    for title, rows in (("Programs that hit the limit", r.limit_hits), ("Programs with the highest peaks", r.top)):
        out += [f"## {title}", ""]
        if not rows:
            out += ["(none)", ""]
        for row in rows:
            out += _program_section(row)
    out += ["## Executor health", ""]
    if r.health is None:
        out += ["Not measured: the programs were not run here (a results file; `--rerun` runs them here).", ""]
    else:
        first, last = r.health.samples[0], r.health.samples[-1]
        out += [f"**{r.health.verdict}** over {last.programs} programs in {last.t_s:g} s "
                f"({len(r.health.samples)} samples). Parent RSS {first.parent_rss_mb:g} -> {last.parent_rss_mb:g} MB "
                f"(fitted growth {r.health.parent_growth_mb:g} MB); largest worker {first.worker_rss_mb:g} -> "
                f"{last.worker_rss_mb:g} MB (fitted growth {r.health.worker_growth_mb:g} MB).", ""]
    if r.problems:
        out += [f"## Problems ({len(r.problems)})", ""] + [f"- {p}" for p in r.problems[:200]]
        if len(r.problems) > 200:
            out.append(f"- ... and {len(r.problems) - 200} more (all in memory.json)")
        out.append("")
    if r.elapsed_s:
        out.append("Time: " + ", ".join(f"{k} {v:g} s" for k, v in r.elapsed_s.items()))
    return "\n".join(out) + "\n"


def _program_section(row: ProgramMemory) -> list[str]:
    out = [f"### task {row.task_id}, sample {row.sample}: {row.peak_memory_mb:.1f} MB, {row.status.value}"
           + (f" ({row.error_type})" if row.error_type else ""), ""]
    if row.alloc_sites:
        out += ["| line | MB held | code |", "|---:|---:|---|"]
        out += [f"| {s.line} | {s.size_mb:.1f}{' *' if s.failed else ''} | `{s.text.replace('|', '/')}` |"
                for s in row.alloc_sites]
        if any(s.failed for s in row.alloc_sites):
            out.append("\n\\* the MemoryError came from this line (a failed numpy array counts at the size it asked for)")
        out.append("")
    if row.notes:
        out += [f"Notes: {row.notes}", ""]
    numbered = "\n".join(f"{i:>3}  {line}" for i, line in enumerate(row.code.splitlines()[:80], 1))
    return out + ["```python", numbered, "```", ""]


def plot(report: MemoryReport, path: Path) -> str | None:
    """Write the PNG; returns why not when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"<{hi:g}" if lo == 0 else f"{lo:g}" for lo, hi, _ in report.histogram]
    ax1.bar(range(len(labels)), [c for _, _, c in report.histogram], color="tab:blue")
    ax1.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
    ax1.set_yscale("symlog")
    ax1.set_xlabel("peak memory (MB, power-of-two bins)")
    ax1.set_ylabel("programs")
    ax1.set_title(f"{report.measured} programs; {report.hit_limit} hit the {report.limit_mb:g} MB limit")
    if report.health is not None:
        s = report.health.samples
        ax2.plot([x.t_s for x in s], [x.parent_rss_mb for x in s], label="parent")
        ax2.plot([x.t_s for x in s], [x.worker_rss_mb for x in s], label="largest worker")
        ax2.set_xlabel("seconds")
        ax2.set_ylabel("resident memory (MB)")
        ax2.set_title(f"executor: {report.health.verdict}")
        ax2.legend()
    else:
        ax2.text(0.5, 0.5, "executor not run here", ha="center", va="center")
        ax2.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


# -- the whole report ----------------------------------------------------------------------------
@dataclass
class _Program:
    """A program of the input: what identifies it, its measured result (if any), how to re-run it."""

    task_id: str
    sample: int
    job: Job | None                  # None: can't be re-run (unknown task...)
    result: ProgramResult | None     # None: not measured
    why_not_runnable: str | None = None


def diagnose(source: str | Path, *, tasks: str | None, solutions: str | None = None, limits: Limits,
             workers: int | None = None, top: int = 10, trace: bool = True, rerun: bool = False,
             out_dir: str | Path = "memory_report", progress: bool = False) -> MemoryReport:
    """The whole report (what ``arc-sandbox diagnose`` prints); returned after its files are written."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    programs, problems, is_results = _read_input(source, tasks, solutions)
    times["read"] = time.perf_counter() - t0
    health, guard_kills = None, None
    if not is_results or rerun:
        runnable = [p for p in programs if p.job is not None]
        t = time.perf_counter()
        with Sandbox(workers=workers, limits=limits, progress=progress) as sb:
            results, samples = run_with_health(sb, [p.job for p in runnable])
            guard_kills = sb.stats.guard_kills
        times["run"] = time.perf_counter() - t
        for p, r in zip(runnable, results):
            p.result = r
        health = health_of(samples)
    if trace:
        t = time.perf_counter()
        problems += _trace(programs, limits, top)
        times["trace"] = time.perf_counter() - t
    rows = [_row(p) for p in programs]
    report = build_report(rows, limits.memory_mb, health=health, guard_kills=guard_kills, problems=problems, top=top)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    why_no_plot = plot(report, out / "memory.png")
    times["plot"] = time.perf_counter() - t
    if why_no_plot:
        report.problems.append(why_no_plot)
    report.elapsed_s = {k: round(v, 2) for k, v in times.items()}
    (out / "memory.md").write_text(report.to_markdown(), encoding="utf-8")
    (out / "memory.json").write_text(report.to_json(), encoding="utf-8")
    return report


def _trace(programs: list[_Program], limits: Limits, top: int) -> list[str]:
    """Re-run the chosen programs with tracing; attach their sites. Returns problems."""
    results = [p.result for p in programs]
    chosen = pick_for_tracing(results, top)
    runnable = [i for i in chosen if programs[i].job is not None]
    for i in chosen:
        if programs[i].job is None:
            programs[i].result.notes.append(f"not re-run with tracing: {programs[i].why_not_runnable}")
    traced = trace_allocations(results, [p.job for p in programs], limits, indices=runnable)
    problems = []
    for i, t in traced.items():
        original = programs[i].result
        original.alloc_sites = t.alloc_sites
        note = f"re-run traced: {t.status.value}, {t.peak_memory_mb:.1f} MB with tracing overhead"
        if not t.alloc_sites:
            note += "; no allocation sites (the run ended before a snapshot, or it allocated under 1 KB per line)"
        original.notes.append(note)
        if t.status not in (original.status, Status.MEMORY_LIMIT, Status.TIMEOUT):
            problems.append(f"task {programs[i].task_id} sample {programs[i].sample}: traced re-run ended "
                            f"{t.status.value}, the measured run {original.status.value}")
    return problems


def _row(p: _Program) -> ProgramMemory | None:
    r = p.result
    if r is None:
        return None
    return ProgramMemory(p.task_id, p.sample, r.status, round(r.peak_memory_mb, 3), r.code, r.error_type,
                         list(r.alloc_sites), "; ".join(r.notes) or None)


def _read_input(source, tasks_source, solutions) -> tuple[list[_Program], list[str], bool]:
    from arc_sandbox.scoring.loading import load_tasks

    tasks = load_tasks(tasks_source, solutions=solutions) if tasks_source else {}
    if _looks_like_results(source):
        programs, problems = _read_results(source, tasks)
        return programs, problems, True
    from arc_sandbox.scoring.runner import read_responses

    responses, problems = read_responses(source)
    programs = []
    for r in responses:
        job, why = _job(r.task_id, r.text, r.augmentation, tasks, key=(r.task_id, r.sample))
        if job is None:
            problems.append(f"task {r.task_id} sample {r.sample}: {why}; not run")
        programs.append(_Program(r.task_id, r.sample, job, None, why))
    return programs, problems, False


def _looks_like_results(source) -> bool:
    """A results file's records carry a status; responses don't."""
    from arc_sandbox.scoring.records import iter_records

    try:
        for _, record, _ in iter_records(source):
            if isinstance(record, dict):
                return "status" in record
    except (OSError, UnicodeDecodeError):
        return False
    return False


def _read_results(source, tasks) -> tuple[list[_Program], list[str]]:
    from arc_sandbox.scoring.records import iter_records, record_to_result

    programs, problems = [], []
    for number, record, error in iter_records(source):
        if error:
            problems.append(error)
            continue
        try:
            rec = record_to_result(record, revert=False)
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        peak = record.get("peak_memory_mb")
        if "code" not in record or not isinstance(peak, (int, float)) or isinstance(peak, bool):
            problems.append(f"line {number}: task {rec.task_id}: no usable peak_memory_mb or code "
                            f"(got peak {peak!r}; a results file from another version?)")
            continue
        job, why = _job(rec.task_id, rec.result.code, rec.augmentation, tasks, key=(rec.task_id, rec.sample))
        programs.append(_Program(rec.task_id, rec.sample, job, rec.result, why))
    return programs, problems


def _job(task_id: str, text: str, augmentation, tasks, key) -> tuple[Job | None, str | None]:
    if not text:
        return None, "no code"
    task = tasks.get(task_id)
    if task is None:
        return None, f"task {task_id} is not in the tasks given (--tasks)"
    if augmentation is not None:
        task = augmentation.apply_task(task)
    return Job(text, task.inputs, key=key), None
