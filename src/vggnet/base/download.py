"""Downloads that cannot hang: a connect and read timeout, a line saying what is fetched from where and how big it
is, progress while it comes, the file put in place atomically (and checked against the hash its name carries), and
one sentence on failure saying how to supply the file by hand."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import urlparse

from .files import atomic_path
from .progress import Progress

TIMEOUT = 30.0  # seconds to connect, and for each read: a server that stops answering fails instead of hanging
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torchvision's file names end in a sha256 prefix


class DownloadError(ValueError):
    """A download that failed, with what to do instead."""


# How the caller gives a file by hand, ``{name}`` the file's name: the command line's flag, or the Python argument of
# the function that downloads (a loss's ``weights=``, LPIPS's ``lin=``); set by them with :func:`supplied_as`.
_SUPPLIED_AS: ContextVar[str] = ContextVar(
    "vggnet_supplied_as", default='the source of vggnet.load_weights(model, "path/to/{name}") or vggnet.load_model'
)


@contextmanager
def supplied_as(how: str) -> Iterator[None]:
    """Downloads inside say that a file can be given by hand as ``how`` (``{name}``: the file's name)."""
    token = _SUPPLIED_AS.set(how)
    try:
        yield
    finally:
        _SUPPLIED_AS.reset(token)


def by_hand(cached: Path) -> str:
    """What to do where a download fails: put the file in the cache, or give its path as the caller takes it."""
    how = _SUPPLIED_AS.get().replace("{name}", cached.name)
    return f"To supply the file by hand, put it at {cached} (torch's hub cache), or pass its path as {how}"


def timeout() -> float:
    return float(os.environ.get("VGGNET_DOWNLOAD_TIMEOUT", TIMEOUT))


def _size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} kB"


def fetch(url: str, dest: str | os.PathLike, advice: str, every: float = 10.0) -> Path:
    """Download ``url`` to ``dest`` (atomically); ``DownloadError`` naming the URL, the cause and ``advice``."""
    dest = Path(dest)
    name = os.path.basename(urlparse(url).path) or dest.name
    wait = timeout()
    try:
        response = urllib.request.urlopen(url, timeout=wait)
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"could not download {url}: {_reason(err, wait)}. {advice}") from None
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        print(f"downloading {name} ({_size(total)}) from {url} into {dest.parent}", file=sys.stderr, flush=True)
        digest = hashlib.sha256()
        shown = Progress(-(-(total or 0) // 2**20), desc=f"downloading {name}", every=every, unit="MB")
        with atomic_path(dest) as tmp, open(tmp, "wb") as f, shown:
            got = 0
            while True:
                try:
                    chunk = response.read(1 << 20)
                except (urllib.error.URLError, OSError) as err:
                    raise DownloadError(
                        f"could not download {url}: {_reason(err, wait)} after {_size(got)}. {advice}"
                    ) from None
                if not chunk:
                    break
                f.write(chunk)
                digest.update(chunk)
                got += len(chunk)
                shown.update(got // 2**20)
            if total is not None and got != total:
                raise DownloadError(
                    f"could not download {url}: the connection closed after {_size(got)} of {_size(total)}. {advice}"
                )
            expected = HASH_IN_NAME.search(name)
            if expected and not digest.hexdigest().startswith(expected.group(1)):
                raise DownloadError(
                    f"{url} arrived corrupted: its sha256 does not start with {expected.group(1)}, "
                    f"as its name says. {advice}"
                )
    return dest


def _reason(err: BaseException, wait: float) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"the server answered HTTP {err.code} ({err.reason})"
    reason = getattr(err, "reason", err)
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {wait:g} s (VGGNET_DOWNLOAD_TIMEOUT sets the limit)"
    return str(reason)
