"""One launch per study: an atomic lock file next to the study's Optuna journal.

    lock = StudyLock(settings.journal_path.parent / LOCK_FILE)
    lock.check()                 # LaunchError naming the launch that runs the study now
    note = lock.acquire(argv)    # atomic create (O_CREAT | O_EXCL); a note when a stale lock was taken over
    ...
    lock.release()               # only our own lock

The lock holds the pid, host, start time and command line of the launch. A lock whose process is
gone from this host is stale (a SIGKILLed driver, a lost head): the next launch takes it over
and says so. A lock of another host cannot be checked from here and is always respected; the
message names the file to delete once that launch is known to be gone. Who holds a lock and
whether it lives is trainables.lock_holder's, which the analysis reads too: a study.json that
says `running` while its lock is stale or absent was left by a killed driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import socket
import uuid
from pathlib import Path

from study.settings import LaunchError
from trainables.lock_holder import Holder, process_start, read_holder
from trainables.storage import FILE_MODE


class StudyLock:
    """The lock file of one study; see the module docstring."""

    def __init__(self, path: str | os.PathLike, study: str) -> None:
        self.path, self.study = Path(path), study
        self._token: str | None = None
        self._created: list[Path] = []  # folders this lock created (removed again if the launch is refused)

    @property
    def token(self) -> str | None:
        """The token written in the lock this launch holds (None before `acquire`)."""
        return self._token

    def check(self) -> Holder | None:
        """Refuse (LaunchError) when a live launch holds the study; the stale holder otherwise."""
        holder = read_holder(self.path)
        if holder is not None and holder.alive:
            raise LaunchError(self._busy(holder))
        return holder

    def acquire(self, argv: list[str]) -> str | None:
        """Take the lock atomically; returns a note when a stale lock was taken over."""
        stale = self.check()
        self._make_parent()
        if stale is not None:
            self._remove_stale(stale)
        me = self._holder(argv)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:  # another launch won the race since the check
            raise LaunchError(self._busy(read_holder(self.path) or me)) from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(dataclasses.asdict(me), indent=2) + "\n")
        os.chmod(self.path, FILE_MODE)  # whatever the umask: readable like every other output
        self._token = me.token
        if stale is None:
            return None
        return f"study {self.study}: its last launch ({stale.describe()}) is gone; took over {self.path}"

    def release(self) -> None:
        """Remove the lock if it is still ours (never another launch's)."""
        if self._token is None:
            return
        holder = read_holder(self.path)
        if holder is not None and holder.token == self._token:
            self.path.unlink(missing_ok=True)
        self._token = None

    def abandon(self) -> None:
        """Release, and remove the folders acquire() created: a refused launch leaves nothing."""
        self.release()
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        self._created = []

    # --- helpers ------------------------------------------------------------------------------------
    def _busy(self, holder: Holder) -> str:
        where = "" if holder.here else f" (another host: delete {self.path} once that launch is gone)"
        return (f"study {self.study} is being run by another launch ({holder.describe()}){where}: wait for it to "
                "end, or choose another --name")

    def _holder(self, argv: list[str]) -> Holder:
        return Holder(pid=os.getpid(), host=socket.gethostname(),
                      started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), argv=list(argv),
                      process_start=process_start(os.getpid()), token=uuid.uuid4().hex)

    def _make_parent(self) -> None:
        missing = []
        folder = self.path.parent
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._created = list(reversed(missing))

    def _remove_stale(self, stale: Holder) -> None:
        """Move the stale lock aside atomically; if what was moved is not that stale lock (another
        launch took it over meanwhile), put it back and refuse."""
        aside = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else removed it; the O_EXCL create decides
        moved = read_holder(aside)
        if moved is not None and moved.token != stale.token:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            raise LaunchError(self._busy(moved))
        aside.unlink(missing_ok=True)
