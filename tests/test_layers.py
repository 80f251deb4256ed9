"""The stages import only downwards (pyproject.toml's import-linter contract): a climb or a
circle between stages fails the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_stages_import_only_downwards():
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    done = subprocess.run([command, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_help_version_and_argument_errors_import_neither_torch_nor_transformers():
    """`talk --help` answers at once: the options are generated from settings modules that import
    no torch, and every heavy import waits until a command runs."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from talk_cli.cli import app\n"
        "codes = [CliRunner().invoke(app, args).exit_code for args in (['--help'], ['--version'], ['distill', '--help'],\n"
        "         ['evaluate', '--help'], ['inspect', '--help'], ['import', '--help'], ['distill', '--method', 'nonsense'])]\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'pandas', 'sklearn', 'torch_geometric', 'peft') if m in sys.modules)\n"
        "print(codes, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 0, 0, 0, 0, 0, 2] []", done.stdout


def test_ruff_lint_and_format_pass():
    """The settings are pyproject.toml's [tool.ruff]; `ruff format` and `ruff check --fix` repair most findings."""
    folders = ["talk_cli", "benchmarks", "tests", "scripts"]
    for command in (["check"], ["format", "--check"]):
        ran = subprocess.run([sys.executable, "-m", "ruff", *command, *folders], cwd=REPO, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-1000:]
