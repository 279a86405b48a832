"""Run programs with BARC's own `common` (from a read-only checkout; nothing of it goes into the repo).
Usage: barc_harness.py IN.json OUT.json BARC_DIR ; IN: [{id, code, inputs}], OUT: {id: [grid | "error: ..."]}"""
import json, random, signal, sys, traceback
sys.path.insert(0, sys.argv[3] + "/seeds")
import numpy as np
import common  # BARC's

class Timeout(BaseException):
    pass

def on_alarm(*_):
    raise Timeout()

signal.signal(signal.SIGALRM, on_alarm)
jobs = json.load(open(sys.argv[1]))
out = {}
for job in jobs:
    results = []
    ns = {"__name__": "barc_program"}
    try:
        signal.alarm(20)
        exec(compile(job["code"], job["id"], "exec"), ns)
        signal.alarm(0)
        fn = ns.get("transform") or ns.get("main")
    except BaseException as exc:
        signal.alarm(0)
        out[job["id"]] = [f"error: {type(exc).__name__}"] * len(job["inputs"])
        continue
    for grid in job["inputs"]:
        random.seed(0); np.random.seed(0)
        try:
            signal.alarm(10)
            o = fn(np.array(grid, dtype=int))
            signal.alarm(0)
            # BARC evaluation's check: an ndarray, 2-D, values 0..9
            if isinstance(o, np.ndarray) and o.ndim == 2 and np.all((0 <= o) & (o <= 9)):
                results.append(np.asarray(o).astype(int).tolist())
            else:
                results.append("error: invalid output")
        except BaseException as exc:
            signal.alarm(0)
            results.append(f"error: {type(exc).__name__}")
    out[job["id"]] = results
json.dump(out, open(sys.argv[2], "w"))
