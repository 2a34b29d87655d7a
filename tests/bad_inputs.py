"""Every bad invocation of the project's command-line tools that is checked, in one list.

tests/test_reliability.py runs each (in-process, or as a real subprocess where the case needs
one) and asserts: exit code 2, exactly one line on stderr starting with "error: ", no traceback,
the expected words, and nothing written. Run as a script it measures every case as a user types
it -- a fresh `python -m ...` process, wall time, what was left on disk -- and prints the
Markdown table of docs/reliability.md:

    RAY_AUTH_MODE=disabled python tests/bad_inputs.py > /tmp/table.md

Placeholders in the arguments: TMP (the case's own folder), STORAGE (TMP/results), CLOSED (a
port where nothing listens), SILENT (a socket that accepts and never answers), HTTP (an HTTP
server), CLUSTER (a running multi-process Ray cluster: a CPU-less head and two 1-CPU workers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = {  # the table's name -> module
    "launch": "study.launch",
    "nodes": "study.nodes",
    "evaluate": "trainables.metrics.evaluate",
    "trainer": "trainables.trainer",
    "validate": "study.validate_cluster",
    "report": "analysis.report",
    "paper": "analysis.paper",
}


@dataclass(frozen=True)
class Case:
    id: str
    tool: str  # a key of TOOLS
    argv: tuple[str, ...]
    needle: str  # words the error line must hold
    group: str  # the class of bad input, for the table
    setup: str | None = None  # a preparation of SETUPS
    cluster: bool = False  # needs CLUSTER
    subprocess: bool = False  # tests run it as a real process (the console as a user sees it)
    # Not bad input but a damaged experiment: the outputs are written, exit 1, one line per damaged
    # file (docs/analysis.md); in the table, checked by test_the_report_of_a_damaged_experiment_...
    damaged: bool = False


def _c(id_: str, tool: str, argv: str, needle: str, group: str, **kw) -> Case:
    return Case(id_, tool, tuple(argv.split()), needle, group, **kw)


CASES: list[Case] = [
    # --- names and numbers --------------------------------------------------------------------------
    _c("no-space", "launch", "", "--space is required", "flags"),
    _c("unknown-space", "launch", "--space nope", "use one of beta, beta_tc, compare, paper, sintro, sintro_tc",
       "flags"),
    _c("unknown-dataset", "launch", "--space beta --dataset mnist", "use one of dsprites, dsprites_small, ukiyoe",
       "flags"),
    _c("unknown-preset", "launch", "--space beta --preset huge", "use one of cpu, smoke, full", "flags"),
    _c("unknown-flag", "launch", "--space beta --bogus", "unrecognized arguments: --bogus", "flags"),
    _c("not-a-number", "launch", "--space beta --trials abc", "invalid int value: 'abc'", "flags"),
    _c("unknown-sampler", "launch", "--space beta --sampler cmaes", "invalid choice: 'cmaes'", "flags"),
    _c("unknown-objective", "launch", "--space beta --objective both", "invalid choice: 'both'", "flags"),
    _c("unknown-score", "launch", "--space beta --score nope", "--score 'nope' cannot be used here", "flags"),
    _c("score-without-factors", "launch", "--space beta --dataset ukiyoe --score mig", "no ground-truth factors",
       "flags"),
    _c("reconstruction-score-multi", "launch", "--space beta --score rec_loss", "use --objective single", "flags"),
    _c("unknown-arch", "launch", "--space beta --arch huge", "--arch 'huge' is unknown", "flags"),
    _c("unknown-final-metrics", "launch", "--space beta --final-metrics slow", "--final-metrics must be fast or full",
       "flags"),
    _c("zero-trials", "launch", "--space beta --trials 0", "--trials must be at least 1", "numbers"),
    _c("negative-epochs", "launch", "--space beta --epochs -3", "--epochs must be at least 1", "numbers"),
    _c("zero-seeds", "launch", "--space beta --seeds 0", "--seeds must be at least 1", "numbers"),
    _c("seeds-over-trials", "launch", "--space beta --seeds 3 --trials 2", "--seeds 3 needs at least 3 trials",
       "numbers"),
    _c("trials-not-multiple", "launch", "--space beta --seeds 3 --trials 4", "use --trials 6", "numbers"),
    _c("paper-trials", "launch", "--space paper --trials 5", "drop --trials", "numbers"),
    _c("zero-cpus", "launch", "--space beta --cpus-per-trial 0", "--cpus-per-trial must be above 0", "numbers"),
    _c("gpu-above-1", "launch", "--space beta --gpus-per-trial 1.5", "a fraction in [0, 1] or a whole number",
       "numbers"),
    _c("gpu-below-0", "launch", "--space beta --gpus-per-trial -0.5", "a fraction in [0, 1] or a whole number",
       "numbers"),
    _c("negative-concurrency", "launch", "--space beta --max-concurrent -1", "--max-concurrent must be 0", "numbers"),
    _c("zero-metrics-every", "launch", "--space beta --metrics-every 0", "--metrics-every must be at least 1",
       "numbers"),
    _c("negative-train-images", "launch", "--space beta --train-images -5", "--train-images must be 0", "numbers"),
    _c("negative-max-failures", "launch", "--space beta --max-failures -1", "--max-failures must be 0 or more",
       "numbers"),
    _c("bad-name-slash", "launch", "--space beta --name a/b", "must be a plain folder name", "numbers"),
    _c("bad-name-dot", "launch", "--space beta --name .hidden", "must be a plain folder name", "numbers"),
    # --- this machine -------------------------------------------------------------------------------
    _c("cpus-over-machine", "launch", "--space beta --cpus-per-trial 999", "more than this machine's", "machine"),
    _c("gpu-without-gpu", "launch", "--space beta --gpus-per-trial 2", "no GPU is visible on this machine", "machine"),
    _c("fraction-gpu-without-gpu", "launch", "--space beta --gpus-per-trial 0.25", "no GPU is visible", "machine"),
    _c("train-images-over-data", "launch", "--space beta --preset smoke --train-images 99999",
       "more than the 7200 images of dsprites_small", "machine"),
    # --- options that would do nothing --------------------------------------------------------------
    _c("journal-dir-local", "launch", "--space beta --journal-dir TMP/j", "--journal-dir applies only with s3://",
       "options doing nothing"),
    _c("pending-timeout-local", "launch", "--space beta --pending-timeout 60",
       "--pending-timeout applies only when joining a cluster", "options doing nothing"),
    _c("pending-timeout-zero", "launch", "--space beta --address 127.0.0.1:1 --pending-timeout 0",
       "--pending-timeout must be a number of seconds above 0", "options doing nothing"),
    _c("retry-failed-new", "launch", "--space beta --retry-failed", "--retry-failed re-runs the failed trials",
       "options doing nothing"),
    # --- the cluster address ------------------------------------------------------------------------
    _c("dead-address", "launch", "--space beta --address 127.0.0.1:CLOSED", "nothing answers at 127.0.0.1",
       "address", subprocess=True),
    _c("silent-listener", "launch", "--space beta --address 127.0.0.1:SILENT", "it is not a Ray cluster",
       "address", subprocess=True),
    _c("http-server", "launch", "--space beta --address 127.0.0.1:HTTP", "it is not a Ray cluster", "address"),
    _c("malformed-address", "launch", "--space beta --address nohost", "expected host:port", "address"),
    _c("ray-client-address", "launch", "--space beta --address ray://127.0.0.1:10001",
       "Ray Client addresses are not supported", "address"),
    _c("nodes-dead-address", "nodes", "--address 127.0.0.1:CLOSED", "nothing answers at 127.0.0.1", "address"),
    _c("nodes-silent-listener", "nodes", "--address 127.0.0.1:SILENT", "it is not a Ray cluster", "address"),
    _c("nodes-unknown-flag", "nodes", "--all", "unrecognized arguments: --all", "address"),
    # --- the cluster's resources and data -----------------------------------------------------------
    _c("cluster-cpus-over-nodes", "launch", "--space beta --preset smoke --address CLUSTER --cpus-per-trial 4",
       "no node of the cluster can hold a trial (4 CPU, 0 GPU)", "cluster", cluster=True),
    _c("cluster-gpu-without-gpus", "launch", "--space beta --preset smoke --address CLUSTER --gpus-per-trial 1",
       "--gpus-per-trial 0 runs on CPUs", "cluster", cluster=True),
    _c("cluster-missing-data", "launch",
       "--space beta --preset smoke --address CLUSTER --dataset dsprites --data-root TMP/none.npz", "not found",
       "cluster", cluster=True),
    # --- storage ------------------------------------------------------------------------------------
    _c("storage-file", "launch", "--space beta --storage TMP/afile/sub", "is a file, not a folder", "storage",
       setup="afile"),
    _c("storage-unwritable", "launch", "--space beta --storage /proc/no-such/x", "cannot be written", "storage"),
    _c("storage-scheme", "launch", "--space beta --storage ftp://host/x", "use a local folder or an s3://", "storage"),
    _c("experiment-exists", "launch", "--space beta --name old", "already exists: pass --resume", "storage",
       setup="old-study"),
    _c("study-locked", "launch", "--space beta --name busy", "is being run by another launch", "storage",
       setup="live-lock"),
    _c("resume-locked", "launch", "--resume --name busy", "is being run by another launch", "storage",
       setup="live-lock"),
    # --- data files ---------------------------------------------------------------------------------
    _c("missing-npz", "launch", "--space beta --dataset dsprites --data-root TMP/none.npz", "not found", "data"),
    _c("corrupt-npz", "launch", "--space beta --dataset dsprites --data-root TMP/bad.npz", "bad.npz", "data",
       setup="corrupt-npz"),
    _c("truncated-npz", "launch", "--space beta --dataset dsprites --data-root TMP/part.npz", "part.npz", "data",
       setup="truncated-npz"),
    _c("no-images", "launch", "--space beta --dataset ukiyoe --data-root TMP/faces", "faces", "data",
       setup="no-images", subprocess=True),
    # --- resume -------------------------------------------------------------------------------------
    _c("resume-missing", "launch", "--resume --name ghost", "no study 'ghost'", "resume"),
    _c("resume-without-name", "launch", "--resume", "--resume needs --name", "resume"),
    _c("resume-other-space", "launch", "--resume --name old --space sintro", "was started with --space beta",
       "resume", setup="old-study"),
    _c("resume-other-flag", "launch", "--resume --name old --epochs 7", "--epochs 7 differs from the resumed study's",
       "resume", setup="old-study"),
    _c("resume-broken-json", "launch", "--resume --name broken", "is not valid JSON", "resume", setup="broken-record"),
    _c("resume-old-settings", "launch", "--resume --name legacy", "holds no settings this version can read",
       "resume", setup="legacy-record"),
    _c("resume-without-state", "launch", "--resume --name stateless", "has no Ray Tune state to resume", "resume",
       setup="stateless"),
    # --- evaluate -----------------------------------------------------------------------------------
    _c("evaluate-no-checkpoint-flag", "evaluate", "", "the following arguments are required: --checkpoint",
       "evaluate"),
    _c("evaluate-missing", "evaluate", "--checkpoint TMP/none.pt", "no such file", "evaluate"),
    _c("evaluate-truncated", "evaluate", "--checkpoint TMP/truncated.pt", "is damaged or not a trainer checkpoint",
       "evaluate", setup="checkpoints", subprocess=True),
    _c("evaluate-corrupt", "evaluate", "--checkpoint TMP/corrupt.pt", "is damaged or not a trainer checkpoint",
       "evaluate", setup="checkpoints"),
    _c("evaluate-not-a-checkpoint", "evaluate", "--checkpoint TMP/other.pt", "is damaged or not a trainer checkpoint",
       "evaluate", setup="checkpoints"),
    _c("evaluate-empty", "evaluate", "--checkpoint TMP/empty.pt", "is damaged or not a trainer checkpoint",
       "evaluate", setup="checkpoints"),
    _c("evaluate-unknown-preset", "evaluate", "--checkpoint TMP/none.pt --preset slow", "invalid choice: 'slow'",
       "evaluate"),
    _c("evaluate-json-folder", "evaluate", "--checkpoint TMP/good.pt --json TMP", "is a folder", "evaluate",
       setup="checkpoints"),
    _c("evaluate-json-under-file", "evaluate", "--checkpoint TMP/good.pt --json TMP/afile/m.json",
       "is a file, not a folder", "evaluate", setup="afile"),
    _c("evaluate-zero-threads", "evaluate", "--checkpoint TMP/none.pt --threads 0", "--threads must be at least 1",
       "evaluate"),
    _c("evaluate-cuda", "evaluate", "--checkpoint TMP/good.pt --device cuda", "no CUDA GPU is visible", "evaluate",
       setup="checkpoints"),
    # --- trainer ------------------------------------------------------------------------------------
    _c("trainer-unknown-variant", "trainer", "--variant nope --out TMP/run", "variant 'nope' is unknown", "trainer"),
    _c("trainer-negative-epochs", "trainer", "--epochs -1 --out TMP/run", "epochs must be >= 0", "trainer"),
    _c("trainer-batch-1", "trainer", "--batch-size 1 --out TMP/run", "batch_size must be >= 2", "trainer"),
    _c("trainer-not-a-number", "trainer", "--lr fast --out TMP/run", "invalid float value: 'fast'", "trainer"),
    _c("trainer-unknown-dataset", "trainer", "--dataset mnist --out TMP/run", "dataset 'mnist' is unknown",
       "trainer"),
    _c("trainer-out-file", "trainer", "--epochs 1 --out TMP/afile", "is a file, not a folder", "trainer",
       setup="afile"),
    _c("trainer-cuda", "trainer", "--device cuda --epochs 1 --out TMP/run", "no CUDA GPU is visible", "trainer"),
    _c("trainer-missing-npz", "trainer", "--dataset dsprites --data-root TMP/none.npz --out TMP/run", "not found",
       "trainer"),
    # --- cluster configs ----------------------------------------------------------------------------
    _c("yaml-missing", "validate", "TMP/none.yaml", "no such file", "cluster config"),
    _c("yaml-broken", "validate", "TMP/c.yaml", "not valid YAML", "cluster config", setup="bad-yaml",
       subprocess=True),
    _c("yaml-invalid", "validate", "TMP/c.yaml", "0.5 is not of type 'integer'", "cluster config",
       setup="invalid-yaml"),
    # --- the analysis commands, and a damaged experiment ---------------------------------------------
    _c("report-missing", "report", "TMP/none", "does not exist", "analysis"),
    _c("report-bad-flag", "report", "TMP/none --budget 3", "unrecognized arguments: --budget", "analysis"),
    _c("report-truncated-result", "report", "TMP/damaged", "unreadable", "analysis", setup="damaged-experiment",
       damaged=True),
    _c("paper-truncated-result", "paper", "TMP/damaged", "unreadable", "analysis", setup="damaged-experiment"),
]


# --- preparations ------------------------------------------------------------------------------------
def _record(name: str, storage: Path, *, status: str = "completed", **changes) -> dict:
    """A study.json as the launcher writes it, for a beta study."""
    from study import settings as cli

    settings, _ = cli.resolve(cli.parse_args(["--space", "beta", "--preset", "smoke", "--name", name, "--storage",
                                              str(storage)]), gpu_visible=False)
    return {"name": name, "space": "beta", "settings": {**dataclasses.asdict(settings), **changes},
            "status": status, "counts": {"completed": 2}, "runs": [{"argv": []}]}


def _write_record(storage: Path, name: str, record: dict | str) -> None:
    (storage / name).mkdir(parents=True, exist_ok=True)
    (storage / name / "study.json").write_text(record if isinstance(record, str) else json.dumps(record))


def _checkpoints(tmp: Path) -> None:
    """good.pt (a real trainer checkpoint, made once per process), and damaged versions of it."""
    good = _good_checkpoint()
    data = good.read_bytes()
    (tmp / "good.pt").write_bytes(data)
    (tmp / "truncated.pt").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[100:4100] = os.urandom(4000)
    (tmp / "corrupt.pt").write_bytes(bytes(corrupt))
    (tmp / "empty.pt").write_bytes(b"")
    import torch

    torch.save({"weights": [1, 2, 3]}, tmp / "other.pt")


_GOOD: list[Path] = []


def _good_checkpoint() -> Path:
    if not _GOOD:
        import atexit
        import shutil
        import tempfile

        from trainables.trainer import TrainConfig, Trainer

        folder = tempfile.mkdtemp(prefix="ckpt-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / "trainer.pt"
        Trainer(TrainConfig(epochs=0, latent_dim=2, batch_size=16, device="cpu")).save_checkpoint(path)
        _GOOD.append(path)
    return _GOOD[0]


def _damaged_experiment(tmp: Path) -> None:
    """An experiment folder of a --space paper study whose one trial's result.json ends half-way
    through a line."""
    folder = tmp / "damaged" / "trial_0000_beta_vae_s0_abc12345"
    folder.mkdir(parents=True)
    record = {"name": "damaged", "space": "paper", "status": "completed"}
    (tmp / "damaged" / "study.json").write_text(json.dumps(record))
    (folder / "params.json").write_text(json.dumps({"variant": "beta_vae", "seed": 0, "optuna_number": 0}))
    row = {"epoch": 1, "outcome": "completed", "mig": 0.1, "rec_loss": 100.0, "trial_id": "abc12345"}
    (folder / "result.json").write_text(json.dumps(row)[:30])


def _yaml(tmp: Path, broken: bool) -> None:
    if broken:
        (tmp / "c.yaml").write_text("provider: {type: aws\n  region: [us-east-1\n")
        return
    import yaml

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5
    (tmp / "c.yaml").write_text(yaml.safe_dump(config))


def _npz(tmp: Path, truncated: bool) -> None:
    if not truncated:
        (tmp / "bad.npz").write_bytes(b"not an npz at all")
        return
    import numpy as np

    np.savez(tmp / "part.npz", imgs=np.zeros((4, 64, 64), np.uint8))
    data = (tmp / "part.npz").read_bytes()
    (tmp / "part.npz").write_bytes(data[: len(data) // 2])


def _faces(tmp: Path) -> None:
    (tmp / "faces").mkdir()
    (tmp / "faces" / "a.png").write_bytes(b"not a png")
    (tmp / "faces" / "notes.txt").write_text("no images here")


def _live_lock(storage: Path) -> None:
    """study 'busy': a study.json that says running, and a lock held by this (live) process."""
    import socket as sock

    _write_record(storage, "busy", _record("busy", storage, status="running"))
    (storage / "busy" / "study.lock").write_text(json.dumps({"pid": os.getpid(), "host": sock.gethostname(),
                                                             "started_at": "2026-01-01T00:00:00+00:00"}))


SETUPS = {
    "afile": lambda tmp, storage: (tmp / "afile").write_text("x"),
    "old-study": lambda tmp, storage: _write_record(storage, "old", _record("old", storage)),
    "broken-record": lambda tmp, storage: _write_record(storage, "broken", "{not json"),
    "legacy-record": lambda tmp, storage: _write_record(storage, "legacy", {"space": "beta", "settings": {"x": 1}}),
    "stateless": lambda tmp, storage: _write_record(storage, "stateless", _record("stateless", storage,
                                                                                  status="interrupted")),
    "live-lock": lambda tmp, storage: _live_lock(storage),
    "checkpoints": lambda tmp, storage: _checkpoints(tmp),
    "damaged-experiment": lambda tmp, storage: _damaged_experiment(tmp),
    "bad-yaml": lambda tmp, storage: _yaml(tmp, broken=True),
    "invalid-yaml": lambda tmp, storage: _yaml(tmp, broken=False),
    "corrupt-npz": lambda tmp, storage: _npz(tmp, truncated=False),
    "truncated-npz": lambda tmp, storage: _npz(tmp, truncated=True),
    "no-images": lambda tmp, storage: _faces(tmp),
}


# --- listeners that are not Ray ------------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # the test reads stderr
        pass


@contextlib.contextmanager
def listeners():
    """{"SILENT": port, "HTTP": port}: a socket that accepts and never answers, and an HTTP server."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"SILENT": str(silent.getsockname()[1]), "HTTP": str(httpd.server_address[1])}
    finally:
        httpd.shutdown()
        httpd.server_close()
        silent.close()


def arguments(case: Case, tmp: Path, ports: dict[str, str], cluster: str = "") -> list[str]:
    """The case's argv with the placeholders filled; launch cases get --storage STORAGE."""
    values = {"TMP": str(tmp), "STORAGE": str(tmp / "results"), "CLOSED": str(closed_port()), "CLUSTER": cluster,
              **ports}
    argv = []
    for a in case.argv:
        for key, value in values.items():
            a = a.replace(key, value)
        argv.append(a)
    if case.tool == "launch" and "--storage" not in argv:
        argv += ["--storage", str(tmp / "results")]
    return argv


def prepare(case: Case, tmp: Path) -> None:
    if case.setup:
        SETUPS[case.setup](tmp, tmp / "results")


def listing(root: Path) -> list[tuple[str, int]]:
    """Every path under root with its size: 'nothing written' means this is unchanged."""
    if not root.exists():
        return []
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


def child_env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("RAY_ADDRESS", None)
    return env


def run_subprocess(case: Case, argv: list[str], cwd: Path) -> tuple[int, str, float]:
    """(exit code, stderr, seconds) of `python -m <tool> argv` in `cwd`."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", TOOLS[case.tool], *argv], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr.strip(), time.monotonic() - start


# --- the table of docs/reliability.md --------------------------------------------------------------------
def _left(before: list, after: list) -> str:
    added = sorted({p for p, _ in after} - {p for p, _ in before})
    changed = sorted(p for (p, size) in after if (p, size) not in before and p not in added)
    if not added and not changed:
        return "nothing"
    return "; ".join(filter(None, [("new: " + ", ".join(added[:4])) if added else "",
                                   ("changed: " + ", ".join(changed[:4])) if changed else ""]))


def table() -> list[str]:
    """Each case as a fresh process; one Markdown row each."""
    import atexit
    import shutil
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import ray_start_cluster

    rows = ["| # | class | tool | bad input | exit | seconds | stderr (first line) | left on disk |",
            "|---|---|---|---|---|---|---|---|"]
    with listeners() as ports, ray_start_cluster({"num_cpus": 1}, {"num_cpus": 1}) as cluster:
        for i, case in enumerate(CASES, 1):
            tmp = Path(tempfile.mkdtemp(prefix="bad-"))
            atexit.register(shutil.rmtree, tmp, True)
            prepare(case, tmp)
            argv = arguments(case, tmp, ports, cluster.address)
            before = listing(tmp)
            rc, err, wall = run_subprocess(case, argv, tmp)
            line = (err.splitlines() or [""])[0].replace("|", "\\|").replace(str(tmp), "TMP")[:150]
            extra = f" (+{len(err.splitlines()) - 1} lines)" if len(err.splitlines()) > 1 else ""
            shown = " ".join(case.argv) or "(no arguments)"
            rows.append(f"| {i} | {case.group} | {case.tool} | `{shown}` | {rc} | {wall:.1f} | {line}{extra} | "
                        f"{_left(before, listing(tmp))} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    print("\n".join(table()))
