"""``arc-sandbox doctor``: which isolation layers this host provides, and the limits a real worker ends up with."""
from __future__ import annotations

from arc_sandbox.executor.hardening import Isolation, probe
from arc_sandbox.executor.pool import Sandbox

_LIMITS_PROGRAM = """
import os, resource
def transform(grid):
    names = ["AS", "CPU", "FSIZE", "NOFILE", "NPROC", "CORE", "STACK"]
    for name in names:
        soft, hard = resource.getrlimit(getattr(resource, "RLIMIT_" + name))
        show = lambda v: "unlimited" if v == resource.RLIM_INFINITY else str(v)
        print(f"RLIMIT_{name}: soft={show(soft)} hard={show(hard)}")
    print(f"uid={os.getuid()} gid={os.getgid()} cwd={os.getcwd()}")
    print("environment:", " ".join(sorted(os.environ)))
    return grid
"""


def doctor(args) -> int:
    policy = Isolation()
    print("Isolation layers on this host (tried in a throw-away process):")
    for status in probe(policy):
        print(f"  {status}")
    print("\nEffective limits inside a real worker:")
    with Sandbox(workers=1, isolation=policy) as sb:
        result = sb.run([(_LIMITS_PROGRAM, [[[0]]])])[0]
        for status in getattr(sb, "layers", []):
            if not status.active:
                print(f"  missing in the worker: {status}")
    if result.status.value != "ok":
        print(f"  could not read them: {result.status} {result.error_type}: {result.error_message}")
        return 1
    print("  " + result.stdout.strip().replace("\n", "\n  "))
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor", help="show which isolation layers this host provides and the effective limits")
    parser.set_defaults(func=doctor)
