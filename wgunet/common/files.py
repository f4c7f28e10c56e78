"""Every file the tools write goes through here: a temporary name in the same folder, fsync, then rename.

A reader (or a resumed run) sees either the old file or the whole new one, never a truncated one, whatever
moment the writer is killed at. Folders (checkpoints, exports) are written the same way with ``atomic_folder``.
``folder_lock`` keeps two processes from writing one output folder at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock, Timeout

from wgunet.common.errors import UserError


class FolderBusy(UserError):
    """Another live process holds the folder's lock."""


class FileFormatError(UserError, ValueError):
    """A file that is not what its name says; the message names the file and what is wrong."""


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON file holding an object (every config, index and record here is one), or one error naming it."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FileFormatError(f"{str(path)!r} is not valid JSON ({error}): restore or re-create it") from None
    if not isinstance(value, dict):
        raise FileFormatError(f"{str(path)!r} holds a JSON {type(value).__name__}, not the object (mapping) it should")
    return value


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def scratch_path(path: str | Path) -> Path:
    """The hidden name beside ``path`` under which this process writes it: ``.NAME.PID.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


SCRATCH = re.compile(r"^\.(?P<name>.+?)(\.\d+)?\.(tmp|old)$")  # scratch_path's, runs.Run's checkpoint staging


def published_path(path: str | Path) -> Path:
    """The user's name of a scratch path (for messages): ``.NAME.PID.tmp`` -> ``NAME``, also for files inside it."""
    parts = [SCRATCH.match(part)["name"] if SCRATCH.match(part) else part for part in Path(path).parts]
    return Path(*parts)


def remove_scratch(folder: str | Path) -> None:
    """Delete the scratch files and folders a killed or failed writer left in ``folder`` (call with its lock held:
    no live writer is using them then)."""
    folder = Path(folder)
    for leftover in (folder.iterdir() if folder.is_dir() else ()):
        if SCRATCH.match(leftover.name):
            shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() else leftover.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it is synced and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = scratch_path(path)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_file(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """``write(handle)`` into ``path`` atomically; ``mode`` is "wb" or "w" (text, UTF-8)."""
    with atomic_path(path) as temporary, open(temporary, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
        write(handle)


def write_text(path: str | Path, text: str) -> None:
    write_file(path, lambda handle: handle.write(text), "w")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1) + "\n")


def sync_tree(folder: Path) -> None:
    """fsync every file under ``folder`` (before the rename that publishes it)."""
    for file in folder.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``path``; on success it replaces ``path`` (synced first)."""
    path = Path(path)
    temporary = scratch_path(path)
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        yield temporary
        sync_tree(temporary)
        old = path.with_name(f".{path.name}.{os.getpid()}.old")
        if path.exists():
            path.rename(old)  # a kill between the two renames leaves the old copy under .old, never nothing
        temporary.rename(path)
        shutil.rmtree(old, ignore_errors=True)
        _fsync_folder(path.parent)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """An exclusive lock on ``folder`` for the life of the block (``filelock``: flock on Unix, msvcrt on Windows).

    The operating system releases it when its holder dies, so a lock left by a killed process (kill -9, a crash, a
    reboot) is never stale: the next process simply takes it. ``.lock.holder`` names the holder for the message.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{str(folder)!r} is a file, not a folder: give the {what} a folder to write into")
    folder.mkdir(parents=True, exist_ok=True)
    lock, holder = FileLock(folder / ".lock"), folder / ".lock.holder"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            who = holder.read_text().strip() or "another process"
        except OSError:
            who = "another process"
        raise FolderBusy(f"{str(folder)!r} is in use by {who}: wait for it to finish (or stop it), "
                         f"or give this {what} another output folder") from None
    try:
        holder.write_text(f"{what} pid {os.getpid()} on {socket.gethostname()}\n")
        yield
    finally:
        lock.release()


def trim_log(path: Path, step: int) -> None:
    """Keep the rows of a ``metrics.jsonl`` up to ``step``: a resumed run redoes the later ones, and a last line
    that a kill cut short is dropped rather than breaking every later read."""
    if not path.is_file():
        return
    rows = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                rows.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    write_text(path, "".join(row + "\n" for row in rows))
