"""Values that become paths, and files that are read whole.

**Names.** Every value that becomes one file or folder name (``save_name`` and its
``-N`` suffix, ``checkpoint.dir``, the logging plugin's file names, a tracker's run id, a
file name taken from a URL, each part of an archive entry) passes :func:`name_problem`:
one path component that works on every operating system. A bad one is refused in one
line that says what a name may hold (:data:`NAME_RULE`), before anything is written.
Folders the user chooses (``save_dir``, ``data_dir``, ``--output``) may be anywhere.

**Files.** A file that is read whole (a configuration file) or handed to a reader that
would block on anything else (a checkpoint) must be a regular file: a device
(``/dev/zero``), a named pipe, a socket or a folder is refused in one line before it is
opened, and a configuration file over :data:`CONFIG_FILE_LIMIT` bytes is refused
unread (:func:`regular_file`, :func:`read_text_file`).

Nothing here imports torch.
"""

from __future__ import annotations

import os
import re
import stat
import urllib.parse
from pathlib import Path

from .errors import ConfigError, InputError, SemilearnError, format_bytes

__all__ = [
    "NAME_RULE",
    "MAX_NAME_BYTES",
    "CONFIG_FILE_LIMIT",
    "name_problem",
    "check_name",
    "entry_problem",
    "portable_name",
    "url_file_name",
    "regular_file",
    "read_text_file",
    "file_kind",
]

MAX_NAME_BYTES = 255  # the limit of a path component on ext4, XFS, APFS, NTFS (in UTF-16 units there)
CONFIG_FILE_LIMIT = 10 * 1024 * 1024  # a configuration file is a few kilobytes

_FORBIDDEN = frozenset('<>:"/\\|?*')
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)),
                       *(f"LPT{n}" for n in range(1, 10))})
_DRIVE = re.compile(r"^[A-Za-z]:")

NAME_RULE = (
    "a name may hold letters, digits, spaces and punctuation other than / \\ < > : \" | ? *; it may not be "
    "empty, '.' or '..', hold a control character, end in a dot or a space, be a device name Windows reserves "
    f"(CON, PRN, AUX, NUL, COM1-9, LPT1-9) or be longer than {MAX_NAME_BYTES} bytes"
)


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one path component on every operating system; None when it can.

    The one rule for every name semilearn turns into a path (see the module docstring).
    """
    if not isinstance(name, str):
        return f"it is not text but {type(name).__name__}"
    if not name:
        return "it is empty"
    if name.startswith(("/", "\\")):
        return "it is an absolute path"
    if _DRIVE.match(name):
        return "it starts with a Windows drive"
    if "/" in name or "\\" in name:
        return "it holds a path separator"
    if name in (".", ".."):
        return f"'{name}' is the folder itself" if name == "." else "'..' is the parent folder"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "it holds a control character"
    forbidden = sorted({char for char in name if char in _FORBIDDEN})
    if forbidden:
        return "it holds " + " ".join(forbidden)
    if name[-1] in ". ":
        return "it ends in a dot or a space"
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        return "Windows reserves it for a device"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid text"
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long"
    return None


def check_name(name: object, what: str, error: type[SemilearnError] = ConfigError) -> str:
    """``name`` when it is one portable path component (:func:`name_problem`); else ``error``
    in one line: ``WHAT must be one file or folder name, not 'NAME' (why); a name may hold ...``."""
    problem = name_problem(name)
    if problem is not None:
        raise error(f"{what} must be one file or folder name, not {name!r} ({problem}); {NAME_RULE}")
    assert isinstance(name, str)
    return name


def entry_problem(entry: str) -> str | None:
    """Why an archive entry (``folder/sub/file``, ``/`` between parts, a trailing ``/`` for
    a folder) would not land inside the folder it is unpacked into; None when it would.
    Each part must be a name (:func:`name_problem`)."""
    if entry.startswith(("/", "\\")):
        return "it is an absolute path"
    parts = [part for part in entry.rstrip("/").split("/") if part != "."]
    if not parts:
        return "it names no file"
    for part in parts:
        problem = name_problem(part)
        if problem is not None:
            return f"part {part!r}: {problem}"
    return None


def portable_name(text: str) -> str:
    """``text`` made a name (:func:`name_problem`) for a name semilearn derives itself (the
    default ``save_name`` from a data set given as ``module:function``): each character a name
    may not hold becomes ``_``, as does a trailing dot or space."""
    cleaned = "".join("_" if char in _FORBIDDEN or ord(char) < 32 or ord(char) == 127 else char for char in text)
    cleaned = re.sub(r"[. ]+$", lambda match: "_" * len(match.group()), cleaned)
    if not cleaned or cleaned in (".", ".."):
        cleaned = "_" + cleaned
    if cleaned.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        cleaned = "_" + cleaned
    while len(cleaned.encode("utf-8", "replace")) > MAX_NAME_BYTES:
        cleaned = cleaned[:-1]
    return cleaned


def url_file_name(url: str, what: str, error: type[SemilearnError] = ConfigError) -> str:
    """The file name an http(s) URL ends in (``.../w.pth?dl=1``: ``w.pth``), which becomes a
    file on disk: a name (:func:`check_name`), else ``error`` in one line."""
    name = urllib.parse.urlparse(url).path.rsplit("/", 1)[-1]
    if not name:
        raise error(f"{what} {url} names no file")
    return check_name(name, f"{what} {url}: the file name it ends in", error)


# ---------------------------------------------------------------------------
# Regular files.
# ---------------------------------------------------------------------------


def file_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words: ``a folder``, ``a named pipe`` ..."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file"


def _checked(info: os.stat_result, path: Path, what: str, limit: int | None, error: type[SemilearnError]) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} is a folder, not a file: {path}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is {file_kind(info.st_mode)}, not a regular file")
    if limit is not None and info.st_size > limit:
        raise error(f"{what} {path} is {format_bytes(info.st_size)}, more than the {format_bytes(limit)} a "
                    f"{what} may be")


def regular_file(path: str | os.PathLike[str], what: str, *, limit: int | None = None,
                 error: type[SemilearnError] = InputError) -> Path:
    """``path`` when it is a regular file (links followed) of at most ``limit`` bytes; else
    ``error`` in one line: not found, a folder, a device, a named pipe, a socket, too large.
    Looks at the file's type without opening it (opening a pipe waits for a writer)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{what} not found: {path}") from None
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem.strerror or problem}") from None
    _checked(info, path, what, limit, error)
    return path


def read_text_file(path: str | os.PathLike[str], what: str, *, limit: int = CONFIG_FILE_LIMIT,
                   error: type[SemilearnError] = ConfigError) -> str:
    """The UTF-8 text of the regular file ``path`` (see :func:`regular_file`), never more than
    ``limit`` bytes read: a file swapped for a pipe or grown after the check is refused too."""
    path = regular_file(path, what, limit=limit, error=error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem.strerror or problem}") from None
    with os.fdopen(descriptor, "rb") as handle:
        _checked(os.fstat(handle.fileno()), path, what, limit, error)
        try:
            data = handle.read(limit + 1)
        except OSError as problem:
            raise error(f"cannot read {what} {path}: {problem.strerror or problem}") from None
    if len(data) > limit:
        raise error(f"{what} {path} is more than the {format_bytes(limit)} a {what} may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"cannot read {what} {path}: it is not UTF-8 text ({problem.reason} at byte "
                    f"{problem.start})") from None
