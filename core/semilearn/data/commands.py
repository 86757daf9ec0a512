"""``semilearn data ...``: commands for data sets (added by the built-in ``catalog`` plugin).

* ``semilearn data download NAME [--data-dir DIR]``: fetch, verify and unpack a benchmark;
* ``semilearn data list [--data-dir DIR]``: which benchmarks are complete in ``DIR``.
"""

from __future__ import annotations

import click

from ..config import CORE_OPTIONS
from .download import MIRROR_ENV, SOURCES, download, missing_files, source_home

__all__ = ["data_group"]

_DEFAULT_DATA_DIR = next(option.default for option in CORE_OPTIONS if option.name == "data_dir")


@click.group("data")
def data_group() -> None:
    """Work with data sets."""


@data_group.command("download")
@click.argument("name", type=click.Choice(sorted(SOURCES)), metavar="NAME")
@click.option("--data-dir", default=_DEFAULT_DATA_DIR, show_default=True,
              help="The configuration's data_dir; the files go to DATA_DIR/<name>/.")
@click.option("--mirror", metavar="URL", default=None,
              help=f"Base URL serving the official files by name (default: ${MIRROR_ENV}, else the official hosts).")
@click.option("--force", is_flag=True, help="Download and unpack again even when a complete copy is there.")
@click.option("--retries", type=click.IntRange(0, 100), default=2, show_default=True,
              help="Times a broken transfer is resumed before giving up (running again resumes too).")
@click.option("--remove-archive", is_flag=True, help="Delete an archive once it is unpacked.")
def download_command(name: str, data_dir: str, mirror: str | None, force: bool, retries: int,
                     remove_archive: bool) -> int:
    """Fetch data set NAME from its official host, verify its checksum and unpack it.

    NAME is one of: cifar10, cifar100, svhn (with the extra split), svhn_noextra, stl10, tissuemnist, eurosat.
    A partial download is resumed; a file already in place (copied from elsewhere) is
    verified and unpacked without any network.
    """
    download(name, data_dir, mirror=mirror, force=force, attempts=retries + 1, remove_archive=remove_archive,
             report=lambda message: click.echo(message, err=True))
    click.echo(f"{name}: ready; train with --set dataset={name} --set data_dir={data_dir}")
    return 0


@data_group.command("list")
@click.option("--data-dir", default=_DEFAULT_DATA_DIR, show_default=True, help="The configuration's data_dir.")
def list_command(data_dir: str) -> int:
    """Show which downloadable data sets are complete in DATA_DIR."""
    for name in SOURCES:
        missing = missing_files(name, data_dir)
        state = "complete" if not missing else f"missing {missing[0].relative_to(source_home(name, data_dir))}"
        click.echo(f"{name:<13} {str(source_home(name, data_dir)):<30} {state}")
    return 0
