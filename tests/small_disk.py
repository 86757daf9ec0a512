"""A small, nearly full disk for tests of what happens when a write runs out of space.

Where the test may mount (root, as on the CI machines), :func:`small_disk` mounts a real
tmpfs of a given size; elsewhere it injects ``OSError(ENOSPC)`` at the write instead: a
``sitecustomize`` module makes every binary file opened with ``os.fdopen`` (how
checkpoints are written) fail once the bytes written exceed a budget kept in a file. In
both cases :meth:`SmallDisk.grow` frees space, and ``env`` carries the injection into a
child process. ``SEMILEARN_TEST_DISK=inject`` forces the injection where a mount would work.

    with small_disk(tmp_path, 400 * 1024) as disk:   # disk.path: the save_dir
        subprocess.run([... "--set", f"save_dir={disk.path}"], env={**os.environ, **disk.env})
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SmallDisk", "small_disk", "budgeted_fdopen", "install_injection"]

BUDGET_VARIABLE = "SEMILEARN_TEST_DISK_BUDGET_FILE"
FORCE_VARIABLE = "SEMILEARN_TEST_DISK"  # "inject": inject even where a tmpfs could be mounted

_SITECUSTOMIZE = f'''
import os
if os.environ.get("{BUDGET_VARIABLE}"):
    import small_disk
    small_disk.install_injection(os.environ["{BUDGET_VARIABLE}"])
'''


class _Budgeted:
    """A binary file whose writes fail with ENOSPC once the shared budget is spent."""

    def __init__(self, handle, budget_file: Path) -> None:  # noqa: ANN001 - any binary file object
        self._handle, self._budget_file = handle, budget_file

    def write(self, data: bytes) -> int:
        import errno

        left = int(self._budget_file.read_text())
        if len(data) > left:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget_file.write_text(str(left - len(data)))
        return int(self._handle.write(data))

    def __getattr__(self, name: str):  # noqa: ANN204 - flush, fileno, close ... of the real file
        return getattr(self._handle, name)

    def __enter__(self) -> _Budgeted:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def budgeted_fdopen(budget_file: str | Path, real_fdopen=os.fdopen):  # noqa: ANN001, ANN201
    """``os.fdopen`` whose ``'wb'`` files fail with ENOSPC beyond the budget in ``budget_file``."""
    budget = Path(budget_file)

    def fdopen(descriptor: int, mode: str = "r", *args: object, **kwargs: object):  # noqa: ANN202
        handle = real_fdopen(descriptor, mode, *args, **kwargs)
        return _Budgeted(handle, budget) if "b" in mode and "w" in mode else handle

    return fdopen


def install_injection(budget_file: str | Path) -> None:
    """Replace ``os.fdopen`` in this process by :func:`budgeted_fdopen` (child processes: ``SmallDisk.env``)."""
    os.fdopen = budgeted_fdopen(budget_file)


@dataclass
class SmallDisk:
    path: Path
    mounted: bool
    env: dict[str, str] = field(default_factory=dict)
    budget_file: Path | None = None

    def grow(self, size: int) -> None:
        """Make the disk ``size`` bytes large (a mounted one) or its budget that many bytes more."""
        if self.mounted:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)
        else:
            assert self.budget_file is not None
            self.budget_file.write_text(str(int(self.budget_file.read_text()) + size))


def _can_mount(point: Path, size: int) -> bool:
    if os.environ.get(FORCE_VARIABLE) == "inject":
        return False
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    completed = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                               capture_output=True)
    return completed.returncode == 0


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: int) -> Iterator[SmallDisk]:
    """A file system of ``size`` bytes at ``tmp_path / 'disk'`` (or the injected equivalent)."""
    point = tmp_path / "disk"
    point.mkdir()
    if _can_mount(point, size):
        try:
            yield SmallDisk(point, mounted=True)
        finally:
            subprocess.run(["umount", "-l", str(point)], check=False)
        return
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    budget = tmp_path / "budget"
    budget.write_text(str(size))
    here = str(Path(__file__).parent)
    pythonpath = os.pathsep.join(filter(None, [str(site), here, os.environ.get("PYTHONPATH")]))
    yield SmallDisk(point, mounted=False, env={"PYTHONPATH": pythonpath, BUDGET_VARIABLE: str(budget)},
                    budget_file=budget)
