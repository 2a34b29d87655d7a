"""Files, local or remote: atomic local writes and one way to reach s3:// and gs:// folders.

Every file the project writes -- checkpoints, data caches, metrics JSON, study.json, the parquet
tables, the report -- goes through here, so two rules hold everywhere:

- A local file is written under a temporary name in its own folder and renamed over the target:
  a reader (or a crash) sees the old file or the new one, never half of one. It is readable by
  everyone who can read the folder (mode 0644), like any file the user writes by hand.
- A location is a local path or a URI (s3://bucket/key, gs://bucket/key). Remote locations go
  through pyarrow's filesystems; an object store PUT is already all-or-nothing.

    with atomic_path("runs/one/trainer.pt") as tmp:
        torch.save(state, tmp)
    write_bytes("s3://bucket/study/study.json", data)
    read_bytes("results/study/study.json")      # None when absent
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o644
REMOTE_SCHEMES = ("s3", "gs", "gcs")


def is_remote(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def join(base: str | os.PathLike, *names: str) -> str:
    """`base`/`names`... for a local path or a URI; a URI's query (``?endpoint_override=...``)
    stays at the end, where pyarrow reads it."""
    text = str(base)
    path, sep, query = text.partition("?") if is_remote(text) else (text, "", "")
    return "/".join([path.rstrip("/"), *names]) + sep + query


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to `path` for the caller to write; on success it replaces `path`,
    on an exception it is removed and `path` is left as it was. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to the local `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def filesystem(location: str | os.PathLike):
    """(pyarrow FileSystem, path within it) for a local path or a URI."""
    import pyarrow.fs as pafs  # deferred: the trainer imports this module and rarely needs pyarrow

    if is_remote(location):
        return pafs.FileSystem.from_uri(str(location))
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def read_bytes(location: str | os.PathLike) -> bytes | None:
    """The content of a file, or None when there is no file there."""
    if not is_remote(location):
        p = Path(location)
        return p.read_bytes() if p.is_file() else None
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes(location: str | os.PathLike, data: bytes | str) -> str:
    """Write a file, atomically: a local rename or one object-store PUT. Returns where: the
    absolute local path, or the URI."""
    if not is_remote(location):
        return str(write_atomic(location, data).resolve())
    fs, path = filesystem(location)
    with fs.open_output_stream(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return str(location)


def delete(location: str | os.PathLike) -> None:
    """Remove a file if there is one (a stale output that a run does not rewrite)."""
    if not is_remote(location):
        Path(location).unlink(missing_ok=True)
        return
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)
