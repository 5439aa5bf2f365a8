"""The package works wherever it is installed: a wheel built from this tree, installed
(not editable) into a fresh virtual environment, lists the registry and runs the smoke
suite by name from a working directory outside the checkout.

No network and no second torch: the wheel is built without build isolation and
installed with ``--no-deps --no-index``; the fresh environment then reaches the
dependencies already installed for the tests (torch, numpy, ...) through a ``.pth`` file
that names this interpreter's site-packages. A path line in a ``.pth`` file is only
appended to ``sys.path`` (the ``.pth`` files *in* that folder are not run), so the
editable install of this checkout there never loads, and the fresh environment's own
site-packages, which holds the wheel, comes first: the test checks where ``nlbench``
is imported from.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from nlbench.blocks import list_blocks
from nlbench.suite import SUITES_DIR, load_suite

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = ["identity", "nl"]

# What a build needs is the source tree, not the local state beside it.
TOP_LEVEL_NOT_COPIED = {".git", ".venv", "build", "dist", ".pytest_cache", ".benchmarks",
                        "results", "reports", "docs", "tests"}


def not_copied(directory: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if Path(directory).resolve() == ROOT:
        skip |= TOP_LEVEL_NOT_COPIED & set(names)
    return skip


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


def build_wheel(tmp: Path) -> Path:
    """Build from a copy of the tree, so setuptools' build/ and *.egg-info stay out of
    the checkout."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=not_copied)
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", dist, src], cwd=tmp)
    wheels = list(dist.glob("nlbench-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def fresh_venv(tmp: Path, wheel: Path) -> tuple[Path, dict[str, str]]:
    """A new virtual environment holding only the wheel, plus a ``.pth`` file that lends
    it this interpreter's installed dependencies. Returns its bin/ and an environment
    for its commands."""
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "NLBENCH_RESULTS"}}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(env_dir),
               COLUMNS="200", PYTHONDONTWRITEBYTECODE="1")
    # This venv's pip installs into the fresh interpreter (pip >= 22.3; Python 3.11 ships
    # 22.3+), before the .pth exists, so pip sees no other nlbench there.
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-index", wheel], cwd=tmp, env=env)
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  cwd=tmp, env=env).stdout.strip()
    lent = [p for p in dict.fromkeys(site.getsitepackages()) if Path(p).is_dir()]
    assert lent and not any(Path(p).resolve() == ROOT for p in lent)
    (Path(purelib) / "_nlbench_test_dependencies.pth").write_text("\n".join(lent) + "\n")
    return bindir, env


@pytest.mark.slow
def test_wheel_installs_and_runs_the_smoke_suite_outside_the_checkout(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        shipped = {Path(n).name for n in zf.namelist() if n.startswith("nlbench/suites/")}
    assert shipped >= {p.name for p in SUITES_DIR.glob("*.toml")} >= {"smoke.toml"}

    bindir, env = fresh_venv(tmp_path, wheel)
    work = tmp_path / "work"
    work.mkdir()
    assert ROOT not in work.resolve().parents

    where = json.loads(run([bindir / "python", "-c",
                            "import json, nlbench, nlbench.suite as s, torch; "
                            "print(json.dumps([nlbench.__file__, str(s.SUITES_DIR), torch.__version__]))"],
                           cwd=work, env=env).stdout)
    module, suites_dir, torch_version = where
    env_dir = bindir.parent.resolve()
    assert env_dir in Path(module).resolve().parents, f"nlbench imported from {module}, not the wheel"
    assert ROOT not in Path(module).resolve().parents
    assert env_dir in Path(suites_dir).resolve().parents
    import torch
    assert torch_version == torch.__version__  # the torch already installed, not another

    listed = run([bindir / "nlbench", "list"], cwd=work, env=env).stdout
    for name in list_blocks():
        assert name in listed, f"{name} missing from `nlbench list`:\n{listed}"

    out = work / "results"
    run([bindir / "nlbench", "run", "--suite", "smoke", "--blocks", ",".join(BLOCKS), "--out", out],
        cwd=work, env=env, timeout=180)
    runs = [p.parent for p in out.glob("*/results.jsonl")]
    assert len(runs) == 1, list(out.iterdir()) if out.exists() else "no results root"
    records = [json.loads(line) for line in (runs[0] / "results.jsonl").read_text().splitlines() if line.strip()]
    expected = {c.case_id for c in load_suite("smoke").cases(only_blocks=BLOCKS)}
    assert len(records) == len(expected) and {r["case_id"] for r in records} == expected
    assert all(r["status"] == "ok" for r in records), [(r["label"], r["status"], r["error"]) for r in records]
