"""Who holds a study's lock file, and whether a launch still runs the study.

study.lock (vocabulary.LOCK_FILE) holds the pid, host, start time and command line of the launch
that runs the study (study.lock takes and releases it). Both the launcher and the analysis ask
whether that launch still lives: study.json says `running` from the start of a launch until its
end, so a killed driver leaves `running` behind with a lock whose process is gone.

    holder = read_holder(folder / LOCK_FILE)     # None: no lock
    launch_runs(record.get("status"), holder)    # False once the launch is gone
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from trainables.vocabulary import StudyStatus


def process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as written in it."""

    pid: int
    host: str
    started_at: str
    argv: list[str] = field(default_factory=list)
    process_start: str | None = None
    token: str = ""

    @property
    def here(self) -> bool:
        return self.host == socket.gethostname()

    @property
    def alive(self) -> bool:
        """True unless the process is known to be gone (only knowable on its own host)."""
        if not self.here:
            return True
        if self.pid <= 0:  # a damaged lock file
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        start = process_start(self.pid)
        return self.process_start is None or start is None or start == self.process_start

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started_at}"


def read_holder(path: str | os.PathLike) -> Holder | None:
    """The holder written in a lock file; None when there is no lock. A damaged lock file (a
    launch killed while writing it) reads as a holder with pid 0 on this host: stale."""
    try:
        data = json.loads(Path(path).read_text())
        return Holder(pid=int(data["pid"]), host=str(data["host"]), started_at=str(data["started_at"]),
                      argv=list(data.get("argv", [])), process_start=data.get("process_start"),
                      token=str(data.get("token", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(pid=0, host=socket.gethostname(), started_at="?")


def launch_runs(status: object, holder: Holder | None) -> bool:
    """A launch runs the study now: its study.json says `running` and the lock's holder lives
    (a `running` study.json without a live lock was left by a killed driver)."""
    return status == StudyStatus.RUNNING.value and holder is not None and holder.alive
