"""What the ``common`` library adds to a worker's start-up, and what its per-program reset costs.

Start-up: in fresh interpreters, ``python3 -X importtime -c "import numpy, scipy.ndimage; import common"``
(the workers preload numpy and scipy.ndimage anyway); the cumulative time of the ``common`` entry is what the
library adds, printed against the numpy + scipy.ndimage time of the same run. The file is imported as a
top-level module from a copy, as the workers serve it (``common``), so that only the library itself is timed,
not arc_sandbox's package modules. Measured with bytecode compiled at every start (this environment sets PYTHONDONTWRITEBYTECODE) and
with cached bytecode. Median of several runs. Target: under 50 ms added.

    python3 benchmarks/common_import.py [--runs 7]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATEMENT = "import numpy, scipy.ndimage; import common"


def import_ms(env: dict) -> tuple[float, float]:
    """(numpy + scipy.ndimage, common) cumulative import times in ms of one fresh interpreter."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", STATEMENT], env=env,
                          capture_output=True, text=True, check=True)
    times = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name[1:].startswith(" "):  # top level: no extra indentation
            times[name.strip()] = int(cumulative) / 1000
    return times["numpy"] + times["scipy.ndimage"], times["common"]


def reset_us(dirty: bool) -> float:
    setup = "from arc_sandbox.dsl import common"
    statement = ("common.Color.RED = 7; common.Color.NOT_BLACK.remove(1); " if dirty else "") + "common.reset_state()"
    runs = 20000
    return min(timeit.repeat(statement, setup, number=runs, repeat=5)) / runs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per measurement")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(REPO / "arc_sandbox" / "dsl" / "common.py", tmp)
        cold = {**os.environ, "PYTHONPATH": tmp, "PYTHONDONTWRITEBYTECODE": "1"}
        cached = {**os.environ, "PYTHONPATH": tmp, "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache")}
        cached.pop("PYTHONDONTWRITEBYTECODE", None)
        import_ms(cached)  # writes the bytecode cache
        for label, env in (("bytecode compiled at start", cold), ("cached bytecode", cached)):
            runs = [import_ms(env) for _ in range(args.runs)]
            baseline = statistics.median(r[0] for r in runs)
            added = statistics.median(r[1] for r in runs)
            print(f"[{label}] numpy + scipy.ndimage {baseline:6.1f} ms; common adds {added:5.1f} ms "
                  f"(ratio {(baseline + added) / baseline:.3f}; target < 50 ms)")
    print(f"reset_state, untouched    : {reset_us(False):7.2f} us")
    print(f"reset_state, after edits  : {reset_us(True):7.2f} us")


if __name__ == "__main__":
    main()
