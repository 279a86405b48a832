"""``python -m arc_sandbox`` / ``python -m arc_rl`` behave like the console scripts of pyproject.toml."""
from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("script, package", [("arc-sandbox", "arc_sandbox"), ("arc-rl", "arc_rl")])
def test_python_m_is_the_console_script(script, package, capsys):
    module, _, function = SCRIPTS[script].partition(":")
    main = getattr(importlib.import_module(module), function)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    script_help = capsys.readouterr().out
    proc = subprocess.run([sys.executable, "-m", package, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.replace(package, script) == script_help.replace(package, script)
    bad = subprocess.run([sys.executable, "-m", package, "no-such-command"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
