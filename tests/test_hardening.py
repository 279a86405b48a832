"""Isolation layers: unit tests of the filter and policy, then real escapes tried in real workers.

Every escape runs as an LLM-written program would, in a Sandbox worker, and must end with a
precise status and no effect outside. A test is skipped (with the reason) only when this host
cannot provide the layer it needs.
"""
from __future__ import annotations

import errno
import os
import resource
import socket
import struct
import threading
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_sandbox import Isolation, IsolationError, Layer, Limits, Sandbox, Status
from arc_sandbox.executor import hardening
from arc_sandbox.executor import seccomp

SECRET_NAME = "ARC_SANDBOX_TEST_SECRET"
SECRET = "s3cr3t-" + uuid.uuid4().hex
GRID = [[1, 2], [3, 4]]


@pytest.fixture(scope="module")
def host_layers() -> dict[Layer, hardening.LayerStatus]:
    return {s.layer: s for s in hardening.probe()}


def need(host_layers, *layers: Layer) -> None:
    for layer in layers:
        status = host_layers[layer]
        if not status.active:
            print(f"skipping: this host cannot provide {status}")
            pytest.skip(f"host lacks the {layer.value} layer: {status.detail}")


@pytest.fixture(scope="module")
def sandbox(host_layers):
    os.environ[SECRET_NAME] = SECRET          # the trainer's API token
    try:
        with Sandbox(workers=1, limits=Limits(timeout_s=5.0)) as sb:
            yield sb
    finally:
        del os.environ[SECRET_NAME]


@pytest.fixture(scope="module")
def fallback_sandbox(host_layers):
    """Without seccomp and rlimits: what the other layers (reaper, uid, netns) hold alone."""
    layers = hardening.ALL_LAYERS - {Layer.SECCOMP, Layer.RLIMITS}
    with Sandbox(workers=1, limits=Limits(timeout_s=1.0), isolation=Isolation(layers=layers)) as sb:
        yield sb


def run(sb: Sandbox, code: str):
    return sb.run([(code, [GRID])])[0]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], timeout: float = 3.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(map(alive, pids)):
        time.sleep(0.02)
    return [p for p in pids if alive(p)]


# -- the filter, checked with a small classic-BPF interpreter --------------------------------
def bpf_run(program, nr: int, arch: int, args: tuple[int, ...]) -> int:
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x06:
            return k
        else:
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf


X86 = seccomp._X86_64
ALLOW, KILL = 0x7FFF0000, 0x80000000


def errno_action(code: int) -> int:
    return 0x00050000 | code


def expected_action(name: str, args: tuple[int, ...], pid: int) -> int:
    """The policy, written independently of the filter's construction."""
    lo = [a & 0xFFFFFFFF for a in args]
    write = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000
    if name in ("execve", "execveat", "fork", "vfork", "ptrace", "socket", "setrlimit", "unshare",
                "io_uring_setup", "bpf", "tkill", "process_vm_readv"):
        return errno_action(errno.EPERM)
    if name in ("clone3", "openat2"):
        return errno_action(errno.ENOSYS)
    if name in ("creat", "unlink", "rename", "mkdir", "chmod"):
        return errno_action(errno.EACCES)
    if name == "clone":
        return ALLOW if lo[0] & 0x10000 else errno_action(errno.EPERM)
    if name == "open":
        return errno_action(errno.EACCES) if lo[1] & write else ALLOW
    if name == "openat":
        return errno_action(errno.EACCES) if lo[2] & write else ALLOW
    if name == "kill":
        return ALLOW if lo[0] in (pid, 0, (-pid) & 0xFFFFFFFF) else errno_action(errno.EPERM)
    if name == "tgkill":
        return ALLOW if lo[0] == pid else errno_action(errno.EPERM)
    if name == "prlimit64":   # reading any limit; setting only this process's own RLIMIT_CPU (pid 0)
        own_cpu = lo[0] == 0 and lo[1] == resource.RLIMIT_CPU
        return ALLOW if args[2] == 0 or own_cpu else errno_action(errno.EPERM)
    return ALLOW   # read, write, mmap... and everything unnamed


CHECKED = ["read", "write", "mmap", "execve", "execveat", "fork", "vfork", "clone", "clone3", "open",
           "openat", "openat2", "creat", "unlink", "rename", "mkdir", "chmod", "kill", "tgkill", "tkill",
           "ptrace", "socket", "setrlimit", "prlimit64", "unshare", "io_uring_setup", "bpf", "process_vm_readv"]
NUMBERS = {**X86.syscalls, "read": 0, "write": 1, "mmap": 9}
FILTER_PID = 4242


@pytest.fixture(scope="module")
def x86_filter():
    # the kill rule allows the process group only for a group leader: build as one
    real = os.getpgid
    os.getpgid = lambda _: FILTER_PID
    try:
        return seccomp.build_filter(FILTER_PID, "x86_64")
    finally:
        os.getpgid = real


arg = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2, 0o100, 0o1000, 0o2000, 0x10000,
                                                             0x11200, FILTER_PID, (-FILTER_PID) % 2**64]))


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(CHECKED), args=st.tuples(*[arg] * 6))
def test_filter_matches_policy(x86_filter, name, args):
    assert bpf_run(x86_filter, NUMBERS[name], X86.audit_arch, args) == expected_action(name, args, FILTER_PID)


def test_filter_lets_a_worker_set_only_its_own_cpu_limit(x86_filter):
    prlimit, new = NUMBERS["prlimit64"], 0x7FFF_0000_1000   # a pointer with both halves set
    assert bpf_run(x86_filter, prlimit, X86.audit_arch, (0, resource.RLIMIT_CPU, new, 0, 0, 0)) == ALLOW
    assert bpf_run(x86_filter, prlimit, X86.audit_arch, (0, resource.RLIMIT_AS, new, 0, 0, 0)) == errno_action(errno.EPERM)
    assert bpf_run(x86_filter, prlimit, X86.audit_arch, (1, resource.RLIMIT_CPU, new, 0, 0, 0)) == errno_action(errno.EPERM)
    assert bpf_run(x86_filter, prlimit, X86.audit_arch, (1, resource.RLIMIT_AS, 0, 0x1000, 0, 0)) == ALLOW  # reading


def test_filter_refuses_other_abis(x86_filter):
    i386 = 0x40000003
    assert bpf_run(x86_filter, 0, i386, (0,) * 6) == KILL                     # int 0x80 from 64-bit code
    assert bpf_run(x86_filter, 0x40000000 | 59, X86.audit_arch, (0,) * 6) == errno_action(errno.ENOSYS)  # x32


def test_filter_builds_for_aarch64_and_rejects_unknown_arches():
    program = seccomp.build_filter(123, "aarch64")
    assert bpf_run(program, 221, seccomp._AARCH64.audit_arch, (0,) * 6) == errno_action(errno.EPERM)  # execve
    assert bpf_run(program, 63, seccomp._AARCH64.audit_arch, (0,) * 6) == ALLOW                       # read
    with pytest.raises(seccomp.SeccompUnavailable, match="mips"):
        seccomp.build_filter(123, "mips")


# -- the policy object ------------------------------------------------------------------------
def test_isolation_validates_and_round_trips():
    with pytest.raises(ValueError, match="Isolation.layers.*'sekcomp'"):
        Isolation(layers={"sekcomp"})
    with pytest.raises(ValueError, match="switched off: seccomp"):
        Isolation(layers={"network"}, require={"seccomp"})
    policy = Isolation(layers={"seccomp", "network"}, require="seccomp", max_open_files=32)
    assert Isolation.from_dict(policy.to_dict()) == policy
    assert Isolation.off().layers == frozenset() and Isolation.strict().require == hardening.ALL_LAYERS


def test_missing_required_layer_stops_the_sandbox():
    policy = Isolation(user="no-such-user-for-arc-sandbox", require={"drop_privileges"})
    if os.geteuid() != 0:
        pytest.skip("dropping privileges is a no-op when not root")
    with pytest.raises(IsolationError, match="drop_privileges"):
        Sandbox(workers=1, isolation=policy)


def test_layers_are_reported(sandbox, host_layers):
    assert [s.layer for s in sandbox.layers] == [s.layer for s in host_layers.values()]
    assert {s.layer for s in sandbox.layers if s.active} == {s.layer for s in host_layers.values() if s.active}
    assert "isolation layers on:" in hardening.summary(sandbox.layers)


# -- escapes, tried by programs in real workers ------------------------------------------------
def test_writing_a_file_fails(sandbox, host_layers, tmp_path):
    need(host_layers, Layer.SECCOMP)
    target = tmp_path / "pwned.txt"
    os.chmod(tmp_path, 0o777)   # writable for anyone: only the sandbox can stop this
    for path in (str(target), "relative.txt"):
        result = run(sandbox, f"def transform(g):\n    open({path!r}, 'w').write('x')\n    return g")
        assert (result.status, result.error_type) == (Status.RUNTIME_ERROR, "PermissionError")
    result = run(sandbox, f"import os\ndef transform(g):\n    os.mkdir({str(tmp_path / 'd')!r})\n    return g")
    assert (result.status, result.error_type) == (Status.RUNTIME_ERROR, "PermissionError")
    assert os.listdir(tmp_path) == []


def test_reading_files_still_works(sandbox):
    code = ("import json, email.utils\ndef transform(g):\n"
            "    print(open('/etc/hostname').read() != '', json.dumps(1))\n    return g")
    result = run(sandbox, code)
    assert result.status is Status.OK, result.error_message
    assert result.stdout.strip() == "True 1"


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.3)
    yield server
    server.close()


def assert_nothing_connected(server: socket.socket) -> None:
    with pytest.raises(socket.timeout):
        server.accept()


def test_connecting_to_loopback_fails(sandbox, host_layers, listener):
    need(host_layers, Layer.SECCOMP)
    port = listener.getsockname()[1]
    code = f"import socket\ndef transform(g):\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    return g"
    result = run(sandbox, code)
    assert (result.status, result.error_type) == (Status.RUNTIME_ERROR, "PermissionError")
    assert_nothing_connected(listener)


def test_network_namespace_alone_has_no_route(fallback_sandbox, host_layers, listener):
    need(host_layers, Layer.NETWORK)
    port = listener.getsockname()[1]
    code = (f"import socket\ndef transform(g):\n    try:\n        socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "    except OSError as e:\n        print(e.errno)\n    return g")
    result = run(fallback_sandbox, code)
    assert result.status is Status.OK and int(result.stdout) in (errno.ENETUNREACH, errno.ECONNREFUSED)
    assert_nothing_connected(listener)


def test_starting_a_subprocess_fails(sandbox, host_layers, tmp_path):
    need(host_layers, Layer.SECCOMP)
    marker = tmp_path / "ran"
    for call in (f"subprocess.run(['touch', {str(marker)!r}])", "os.execv('/bin/true', ['true'])",
                 "os.posix_spawn('/bin/true', ['true'], {})"):
        result = run(sandbox, f"import os, subprocess\ndef transform(g):\n    {call}\n    return g")
        assert (result.status, result.error_type) == (Status.RUNTIME_ERROR, "PermissionError"), call
    result = run(sandbox, f"import os\ndef transform(g):\n    print(os.system('touch {marker}'))\n    return g")
    assert result.status is Status.OK and result.stdout.strip() != "0"
    assert not marker.exists()


def test_environment_secrets_are_out_of_reach(sandbox, host_layers):
    need(host_layers, Layer.ENVIRONMENT, Layer.DROP_PRIVILEGES)
    code = f"""
import os
def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        return type(e).__name__.encode()
def transform(g):
    print('environ', {SECRET_NAME!r} in os.environ)
    for path in ['/proc/self/environ', '/proc/{os.getpid()}/environ', '/proc/%d/environ' % os.getppid()]:
        print(path, {SECRET!r}.encode() in read(path))
    return g
"""
    result = run(sandbox, code)
    assert result.status is Status.OK, result.error_message
    assert "True" not in result.stdout and result.stdout.count("False") == 4, result.stdout


def test_secret_is_not_in_worker_memory(monkeypatch):
    # The pattern matches the secret without containing it (the program's own text is in memory).
    pattern = SECRET[:7].encode() + b"[0-9a-f]{32}"
    code = f"""
import ctypes, re
def transform(g):
    secret = re.compile({pattern!r})
    found = 0
    for line in open('/proc/self/maps'):
        span, perms = line.split()[:2]
        if not perms.startswith('r') or '[v' in line:
            continue
        start, end = (int(x, 16) for x in span.split('-'))
        for at in range(start, end, 1 << 24):
            found += len(secret.findall(ctypes.string_at(at, min((1 << 24) + 64, end - at))))
    print(found)
    return g
"""
    monkeypatch.setenv(SECRET_NAME, SECRET)
    with Sandbox(workers=1, limits=Limits(timeout_s=10.0)) as fresh:   # no earlier program held the secret
        result = run(fresh, code)
    assert result.status is Status.OK, result.error_message
    assert result.stdout.strip() == "0"


def test_killing_the_parent_fails(sandbox, host_layers):
    need(host_layers, Layer.SECCOMP)
    for target in ("os.getppid()", str(os.getpid()), "-1"):
        result = run(sandbox, f"import os, signal\ndef transform(g):\n    os.kill({target}, signal.SIGKILL)\n    return g")
        assert (result.status, result.error_type) == (Status.RUNTIME_ERROR, "PermissionError"), target
    assert run(sandbox, "def transform(g):\n    return g").status is Status.OK


def test_signals_to_itself_still_work(sandbox):
    code = ("import os, signal\ndef transform(g):\n    signal.signal(signal.SIGUSR1, lambda *a: print('got it'))\n"
            "    os.kill(os.getpid(), signal.SIGUSR1)\n    signal.signal(signal.SIGUSR1, signal.SIG_DFL)\n    return g")
    result = run(sandbox, code)
    assert result.status is Status.OK and "got it" in result.stdout


@pytest.mark.parametrize("limit", ["RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_NPROC"])
def test_raising_own_limits_fails(sandbox, fallback_sandbox, host_layers, limit):
    need(host_layers, Layer.SECCOMP, Layer.DROP_PRIVILEGES)
    code = (f"import resource\ndef transform(g):\n    r = resource.{limit}\n"
            "    resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n    return g")
    # seccomp refuses; without it (fallback) the unprivileged user cannot raise a hard limit
    for sb in (sandbox, fallback_sandbox) if limit == "RLIMIT_AS" else (sandbox,):
        result = run(sb, code)
        assert (result.status, result.error_type) == (Status.RUNTIME_ERROR, "ValueError"), (limit, result.stdout)
        assert "not allowed to raise" in result.error_message


def test_forking_fails(sandbox, host_layers):
    need(host_layers, Layer.SECCOMP)
    result = run(sandbox, "import os\ndef transform(g):\n    if os.fork() == 0:\n        os._exit(0)\n    return g")
    assert (result.status, result.error_type) == (Status.RUNTIME_ERROR, "PermissionError")


def test_threads_still_work(sandbox):
    code = ("import threading\ndef transform(g):\n    out = []\n    t = threading.Thread(target=out.append, args=(g,))\n"
            "    t.start(); t.join()\n    return out[0]")
    result = run(sandbox, code)
    assert result.status is Status.OK and result.outputs[0].tolist() == GRID


DOUBLE_FORK = """
import ctypes, os, time
def transform(g):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            ctypes.CDLL(None).prctl(15, MARKER, 0, 0, 0)   # PR_SET_NAME: what the test looks for
            time.sleep(60)
            os._exit(0)
        os._exit(0)
    time.sleep(0.3)
    AFTER
    return g
"""


class Watch:
    """Polls /proc in a thread for processes named ``marker``; remembers every one it saw."""

    def __init__(self, marker: str) -> None:
        self.marker, self.seen, self.stop = marker, set(), threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.is_set():
            self.seen.update(self.current())
            time.sleep(0.01)

    def current(self) -> list[int]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == self.marker and alive(int(pid)):
                        found.append(int(pid))
            except OSError:
                pass
        return found

    def __enter__(self) -> "Watch":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.parametrize("how, status", [
    ("pass", Status.OK),                                                        # reaped after the program
    ("while True:\n        try:\n            time.sleep(30)\n        except BaseException:\n            pass",
     Status.TIMEOUT),                                                           # worker killed from outside
    ("os._exit(3)", Status.CRASHED),                                            # worker ends itself
])
def test_detached_grandchild_does_not_outlive_the_program(fallback_sandbox, host_layers, how, status):
    need(host_layers, Layer.REAPER)
    marker = "arcm" + uuid.uuid4().hex[:8]
    code = DOUBLE_FORK.replace("MARKER", repr(marker.encode())).replace("AFTER", how)
    with Watch(marker) as watch:
        result = run(fallback_sandbox, code)
        time.sleep(0.1)
    assert result.status is status, (result.error_type, result.error_message)
    assert watch.seen, "the program never started its detached process"
    assert wait_gone(sorted(watch.seen)) == []
    assert Watch(marker).current() == []
    named = [note for note in result.notes if any(str(pid) in note for pid in watch.seen)]
    assert named, f"the sandbox did not say which processes it killed: {result.notes}"


def test_working_directory_is_fresh_empty_and_removed(sandbox, host_layers):
    need(host_layers, Layer.WORKDIR)
    result = run(sandbox, "import os\ndef transform(g):\n    print(os.getcwd(), len(os.listdir('.')))\n    return g")
    cwd, count = result.stdout.split()
    assert count == "0" and os.path.isdir(cwd)
    template_root = os.path.dirname(cwd)
    with Sandbox(workers=1) as other:
        other_cwd = run(other, "import os\ndef transform(g):\n    print(os.getcwd())\n    return g").stdout.strip()
        assert other_cwd != cwd
    assert not os.path.exists(os.path.dirname(other_cwd))
    assert os.path.isdir(template_root)   # the first sandbox is still open


def test_isolation_off_runs_programs(host_layers):
    with Sandbox(workers=1, isolation=Isolation.off()) as sb:
        assert not any(s.active for s in sb.layers)
        result = run(sb, "import os\ndef transform(g):\n    print(os.getuid())\n    return g")
    assert result.status is Status.OK and result.stdout.strip() == str(os.getuid())


def test_missing_layer_is_logged_and_reported(caplog):
    if os.geteuid() != 0:
        pytest.skip("dropping privileges is a no-op when not root")
    with caplog.at_level("WARNING", logger="arc_sandbox"):
        with Sandbox(workers=1, isolation=Isolation(user="no-such-user-for-arc-sandbox")) as sb:
            absent = hardening.missing(sb.layers)
            result = run(sb, "import os\ndef transform(g):\n    print(os.getuid())\n    return g")
    assert [s.layer for s in absent] == [Layer.DROP_PRIVILEGES] and "no-such-user" in absent[0].detail
    assert "missing: drop_privileges" in caplog.text
    assert result.status is Status.OK   # the sandbox still runs, and says so
