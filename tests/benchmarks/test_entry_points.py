"""Every benchmark at least starts: `make bench` runs them only on demand, so an import that a
refactoring broke (a constant moved between modules) would otherwise show only there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if "argparse" in p.read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_imports_and_prints_its_usage(script):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    result = subprocess.run([sys.executable, f"benchmarks/{script}", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
