"""Writing files so that nothing written before is ever lost: one atomic writer for every file, folder locks, and
sets of files put in place together.

Every file goes through :func:`atomic_path`: written beside its target under a temporary name, fsynced, given the
user's umask, renamed over the target, and the folder fsynced. A failed write (a full disk, a quota, a read-only
folder, a kill) leaves the target as it was and no temporary behind, and surfaces as one ``OSError`` naming the
target and the cause. :func:`folder_lock` keeps two commands out of one output folder; :class:`Staging` builds a set
of files aside and puts them in place only once all of them are complete.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _parent_folder(target: Path) -> None:
    """Create ``target``'s folder, or say which part of its path is a file."""
    for parent in [target.parent, *target.parent.parents]:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"cannot write {target}: {parent} is a file, not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(target.parent)) from None


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _as_os_error(err: BaseException, target: Path) -> OSError | None:
    """An ``OSError`` naming ``target`` for a failed write: the error itself, or (for libraries that report a full
    disk as something else, such as PyTorch's zip writer) the disk's state."""
    if isinstance(err, OSError) and err.errno is not None:
        return OSError(err.errno, err.strerror or os.strerror(err.errno), str(target))
    if isinstance(err, Exception) and not isinstance(err, (ValueError, KeyboardInterrupt)):
        with contextlib.suppress(OSError):
            stats = os.statvfs(target.parent)
            if stats.f_bavail * stats.f_frsize < 1 << 20:
                return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        code = next((c for c in (errno.ENOSPC, errno.EDQUOT) if os.strerror(c) in str(err)), None)
        if code is not None:
            return OSError(code, os.strerror(code), str(target))
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it, give it the user's umask and rename it over
    ``path``. Any failure (or a kill) before the rename leaves ``path`` as it was; the temporary file is removed."""
    target = Path(path)
    _parent_folder(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise _as_os_error(err, target) from None
    os.close(fd)
    with _into_place(Path(tmp), target):
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())  # as any new file would be, whatever mode the writer gave it
        os.replace(tmp, target)


@contextlib.contextmanager
def _into_place(tmp: Path, target: Path) -> Iterator[None]:
    """Around the work that fills ``tmp`` and renames it over ``target``: on any failure ``tmp`` is removed and a
    failed write becomes an ``OSError`` naming ``target``; on success the rename is made durable."""
    try:
        yield
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        converted = _as_os_error(err, target)
        if converted is not None:
            raise converted from None
        raise
    _fsync_folder(target.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a Python file object (so a full disk is an ``OSError``, not a zip-writer assertion)."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return atomic_write(path, write)


def load_torch(path: str | os.PathLike, what: str = "PyTorch file") -> Any:
    """``torch.load`` on the CPU of tensors and plain containers only (``weights_only``: nothing in the file runs). A
    file that does not load is a ``ValueError`` whose text is the reason in a few words (``what`` names the kind of
    file expected); torch's own reasons are paragraphs."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns of a TorchScript archive before refusing it: said below
            warnings.filterwarnings("ignore", "'torch.load' received a zip file that looks like a TorchScript")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, pickle.UnpicklingError) and "GLOBAL" in str(err):
            reason = "it holds pickled Python objects, which are never loaded (only tensors and plain containers)"
        elif "TorchScript" in first:
            reason = "it is a TorchScript program (as vggnet export writes), not weights: give the weights it came from"
        elif first.startswith("Weights only load failed") or "zip archive" in first:
            reason = f"not a {what} or truncated"
        else:
            reason = f"not a {what} or truncated ({first[:160]})"
        raise ValueError(reason) from None


def save_safetensors(tensors: dict[str, Any], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Tensors (and string metadata) as a safetensors file, written atomically."""
    from safetensors.torch import save

    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def atomic_copy(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` becomes a copy of ``source`` in one step: a hard link under a temporary name renamed over it (the
    file's data is not written twice), or a copied file where links are not possible."""
    target = Path(path)
    _parent_folder(target)
    if target.exists() and os.path.samefile(source, target):
        return target  # already a link to it: a rename between two links of one file would leave the temporary
    tmp = target.parent / f".{target.name}.{os.getpid()}.link.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(source, tmp)
    except OSError:
        return atomic_write(target, lambda t: shutil.copyfile(source, t))
    with _into_place(tmp, target):
        os.replace(tmp, target)
    return target


# -- one command per output ---------------------------------------------------------------------------------------
LOCK_NAME = ".vggnet.lock"


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Hold an exclusive lock on an output folder (or, for a file, on a lock file beside it) while a command writes
    there. A second command is refused with a sentence naming the folder and the holder's process id. The lock is
    the kernel's (``flock``): a killed holder releases it, so nothing stale ever blocks the next run."""
    target = Path(path)
    folder_like = target.is_dir() or not target.suffix
    lock_file = target / LOCK_NAME if folder_like else target.parent / f".{target.name}.lock"
    created = not lock_file.parent.exists()
    _parent_folder(target)
    _parent_folder(lock_file)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, _umask_mode())
    locked = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ValueError(
                f"{what} {target} is in use by another vggnet command (process {holder}); wait for it to finish "
                "or choose another output"
            ) from None
        with contextlib.suppress(OSError):  # the holder's id is for messages only: a full disk must not stop us
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        locked = True
        yield lock_file
    finally:
        if locked:
            with contextlib.suppress(OSError):
                if created and [p.name for p in lock_file.parent.iterdir()] == [lock_file.name]:
                    # a command that wrote nothing (bad input) leaves no empty folder behind
                    lock_file.unlink()
                    lock_file.parent.rmdir()
                elif not folder_like:
                    lock_file.unlink()
        os.close(fd)  # releases the lock


class Staging:
    """Files built aside in a hidden folder under ``out`` and moved into place together by :meth:`commit`, after
    every one of them is complete: until then the earlier set in ``out`` stays whole. Leftovers of a killed earlier
    attempt are removed on entry (callers hold the folder's lock, so none can be in use)."""

    PREFIX = ".staging-"

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.folder: Path | None = None

    def __enter__(self) -> Staging:
        _parent_folder(self.out / "x")
        for stale in self.out.glob(f"{self.PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.folder = Path(tempfile.mkdtemp(prefix=self.PREFIX, dir=self.out))
        return self

    def path(self, name: str) -> Path:
        """Where to build ``name`` (a relative path: ``1/model.onnx`` is fine)."""
        assert self.folder is not None
        (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
        return self.folder / name

    def commit(self, names: list[str], replaces: list[str] = ()) -> list[str]:
        """Move the staged ``names`` into ``out`` (each rename atomic), then remove files of the earlier set
        (``replaces``) that the new one lacks, so the folder never mixes two sets. Returns what was removed."""
        assert self.folder is not None
        for name in names:
            staged = self.folder / name
            with open(staged, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(staged, _umask_mode())
        for name in names:
            (self.out / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.folder / name, self.out / name)
        removed = [n for n in replaces if n not in names and (self.out / n).exists()]
        for name in removed:
            (self.out / name).unlink()
        _fsync_folder(self.out)
        return removed

    def __exit__(self, *exc: Any) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def cache_dir() -> Path:
    """vggnet's cache (downloaded data, measured engines): ``$VGGNET_CACHE``, else ``~/.cache/vggnet``."""
    return Path(os.environ.get("VGGNET_CACHE", Path.home() / ".cache" / "vggnet"))


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence what C++ libraries write to file descriptor 2 (Python's own sys.stderr included) for a moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
