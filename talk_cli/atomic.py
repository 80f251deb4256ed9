"""Crash-safe file writes: write beside the target, fsync, then rename over it.

A reader therefore sees either the old file or the complete new one, never a torn one. What is
written follows the user's umask, as a plain `open` would (temporary files are created private,
0600 and 0700, and would otherwise keep those modes): a bundle or a TAG folder on a shared file
system is readable by whoever the user's umask lets read it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from talk_cli.errors import OutputError, TalkError


def umask() -> int:
    current = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(current)
    return current


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cannot_write(path: Path, err: OSError) -> OutputError:
    """A write the file system refused, in one line naming the user's path."""
    return OutputError(f"{path}: cannot write here ({err.strerror or err})")


def check_replaceable(path: Path, force: bool, files: tuple[str, ...], what: str, foreign: str, error: type[TalkError]) -> bool:
    """Whether the output folder `path` exists and will be replaced: only with --force, and only
    when it is `what` this tool wrote, holding `files` (the first of which marks it) and nothing
    else: any other file there is the user's, named in the refusal (`foreign` says what they are)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return False
    if not force:
        raise error(f"{path} already exists (pass --force to replace it)")
    if path.is_symlink() or not (path / files[0]).is_file():
        raise error(f"{path} exists and is not {what}; refusing to replace it")
    others = sorted(p.name for p in path.iterdir() if p.name not in files)
    if others:
        raise error(
            f"{path} holds {foreign} ({', '.join(map(repr, others[:5]))}{', ...' if len(others) > 5 else ''}); "
            "refusing to replace it: move them, or choose another --out"
        )
    return True


def make_parents(directory: Path) -> list[Path]:
    """Create `directory` and any missing folders above it; returns those it created, deepest
    first, so that a failed write can remove them again."""
    created = []
    for folder in [directory, *directory.parents]:
        if folder.exists():
            break
        created.append(folder)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        remove_folders(created)
        raise cannot_write(directory, err) from None
    if not directory.is_dir():
        raise OutputError(f"{directory}: is not a folder")
    return created


def remove_folders(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; each is empty unless someone else wrote there meanwhile
        try:
            folder.rmdir()
        except OSError:
            break


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    created = make_parents(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        remove_folders(created)
        raise cannot_write(path, err) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~umask())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # including KeyboardInterrupt: never leave the temporary behind
        Path(tmp).unlink(missing_ok=True)
        remove_folders(created)
        if isinstance(err, OSError):
            raise cannot_write(path, err) from None
        raise
    fsync_directory(path.parent)


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A temporary folder beside `target` to build it in. When the block ends, the folder replaces
    `target` in one rename (an existing `target` is moved aside first and removed after); when it
    fails (Ctrl-C included), the folder is removed, and so are the parent folders made for it, and
    `target` is left as it was."""
    target = Path(target)
    created = make_parents(target.parent)
    try:
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        os.chmod(staging, 0o777 & ~umask())
    except OSError as err:
        remove_folders(created)
        raise cannot_write(target, err) from None
    try:
        yield staging
        fsync_directory(staging)
        if target.exists():
            retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
        fsync_directory(target.parent)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        remove_folders(created)
        if isinstance(err, OSError):
            raise cannot_write(target, err) from None
        raise
