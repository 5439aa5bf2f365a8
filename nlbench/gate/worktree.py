"""The two source trees of ``nlbench gate --base REF``: the checkout the command runs in
(uncommitted changes included) and ``REF`` materialised in a temporary git worktree,
removed again afterwards."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

from nlbench.vocabulary import did_you_mean

GIT_TIMEOUT_S = 120


class GitError(ValueError):
    """A git operation the gate needs failed: not a checkout, an unknown ref, …"""


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise GitError("git is not installed; `nlbench gate --base` needs it") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {' '.join(args)} did not finish within {GIT_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)} (in {root}): {done.stderr.strip() or f'exit code {done.returncode}'}")
    return done.stdout.strip()


def repository_root(path: Path | None = None) -> Path:
    """The top of the git checkout containing ``path`` (default: the working directory)."""
    where = Path(path or Path.cwd())
    try:
        return Path(_git(where, "rev-parse", "--show-toplevel")).resolve()
    except GitError:
        raise GitError(f"{where.resolve()} is not inside a git checkout; `nlbench gate --base REF` compares the "
                       "checkout it runs in with REF") from None


def resolve_ref(root: Path, ref: str) -> str:
    """The commit ``ref`` names; an unknown ref suggests branch and tag names close to it."""
    if not ref or ref.startswith("-"):
        raise GitError(f"not a git ref: {ref!r}")
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        names = _git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/tags",
                     "refs/remotes").splitlines()
        raise GitError(f"unknown git ref {ref!r} in {root}.{did_you_mean(ref, names)}") from None


def describe_tree(root: Path, ref: str | None = None) -> dict[str, Any]:
    """Which code a side ran: its root, the ref asked for, the commit, and whether the
    tree had uncommitted changes to tracked files."""
    commit = _git(root, "rev-parse", "HEAD")
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    return {"root": str(root), "ref": ref, "commit": commit, "dirty": dirty}


@contextlib.contextmanager
def worktree(root: Path, ref: str) -> Iterator[Path]:
    """``ref`` checked out (detached) in a temporary worktree of ``root``'s repository."""
    commit = resolve_ref(root, ref)
    with tempfile.TemporaryDirectory(prefix="nlbench-gate-") as parent:
        path = Path(parent) / "base"
        _git(root, "worktree", "add", "--detach", "--quiet", str(path), commit)
        try:
            yield path.resolve()
        finally:
            with contextlib.suppress(GitError):
                _git(root, "worktree", "remove", "--force", str(path))
            with contextlib.suppress(GitError):
                _git(root, "worktree", "prune")
