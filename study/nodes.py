"""Which Ray cluster, and what its nodes hold -- read before anything is submitted, in seconds.

    address, notes = resolve_address("auto")      # ClusterError: one line, when nothing answers
    view = probe(address)                          # nodes, resources, autoscaler; a non-Ray port fails in seconds
    view.largest(), view.fits({"CPU": 2, "GPU": 1}), view.node_types

    python -m study.nodes --address auto           # the nodes with a short label (what `ray list nodes` shows)

`ray.init(address=...)` has no timeout: pointed at a port where something that is not Ray
listens, it retries for minutes. The probe therefore first checks that the port speaks gRPC at
all (an HTTP/2 preface, GRPC_TIMEOUT_S), then asks the cluster's GCS from a child process (Ray's
own client, `ray._raylet.GcsClient`) that is killed after PROBE_TIMEOUT_S; only an address that
answered is joined. `auto` looks where Ray itself looks: $RAY_ADDRESS,
the `ray_current_cluster` file of the default temp dir, and the GCS addresses of the raylets
running on this machine (a cluster started with `ray start --temp-dir ...` is found there);
a stale file is skipped with a note. The autoscaler's node types come from the cluster config
in the GCS (autoscaler v2, KubeRay) or `~/ray_bootstrap_config.yaml` (what `ray up` puts on the
head). This module imports only the standard library at the top: the probe child must start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from trainables.cli import OneLineParser, UsageError
from trainables.vocabulary import node_label

TCP_TIMEOUT_S = 5.0  # something must accept a connection at host:port within this
GRPC_TIMEOUT_S = 3.0  # ... and answer as a gRPC server within this
PROBE_TIMEOUT_S = 15.0  # the child process: Python start, ray._raylet import, three GCS calls
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GCS_CALL_TIMEOUT_S = 5
AUTOSCALING_STATUS_KEY = b"__autoscaling_status"  # ray._private.ray_constants.DEBUG_AUTOSCALING_STATUS
READONLY_NODE_TYPE = "node_"  # the monitor of a manual cluster names each node's type node_<id>
BOOTSTRAP_CONFIG = Path.home() / "ray_bootstrap_config.yaml"  # written by `ray up` on the head
PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


class ClusterError(ValueError):
    """The cluster cannot be used: one line naming the problem and the fix."""


@dataclass(frozen=True)
class Node:
    node_id: str
    ip: str
    host: str
    alive: bool
    head: bool
    resources: dict[str, float]

    @property
    def label(self) -> str:
        return node_label(self.node_id, self.host) or self.node_id

    def holds(self, bundle: dict[str, float]) -> bool:
        return all(self.resources.get(k, 0.0) >= v for k, v in bundle.items() if v > 0)


@dataclass(frozen=True)
class NodeType:
    """A kind of node the autoscaler can add."""

    name: str
    resources: dict[str, float]
    max_count: int  # -1: no limit

    def holds(self, bundle: dict[str, float]) -> bool:
        return self.max_count != 0 and all(self.resources.get(k, 0.0) >= v for k, v in bundle.items() if v > 0)


@dataclass(frozen=True)
class ClusterView:
    address: str
    nodes: list[Node]
    node_types: list[NodeType] = field(default_factory=list)
    autoscaler: bool = False  # an autoscaler with a provider runs (its node types may be unknown)

    @property
    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.alive]

    @property
    def gpus(self) -> float:
        return sum(n.resources.get("GPU", 0.0) for n in self.alive)

    @property
    def cpus(self) -> float:
        return sum(n.resources.get("CPU", 0.0) for n in self.alive)

    def fits(self, bundle: dict[str, float]) -> bool:
        return any(n.holds(bundle) for n in self.alive)

    def largest(self) -> Node | None:
        """The alive node with the most GPUs, then CPUs."""
        return max(self.alive, key=lambda n: (n.resources.get("GPU", 0.0), n.resources.get("CPU", 0.0)), default=None)

    def growable(self, bundle: dict[str, float]) -> list[NodeType]:
        return [t for t in self.node_types if t.holds(bundle)]


# --- where the cluster is --------------------------------------------------------------------------
def resolve_address(address: str) -> tuple[str, list[str]]:
    """host:port of the cluster to join, and notes; ClusterError if nothing answers there."""
    notes: list[str] = []
    if address.startswith("ray://"):
        raise ClusterError(f"--address {address}: Ray Client addresses are not supported (Tune needs the driver on "
                           "a cluster node): run the launcher on the head (ray job submit / ray exec) with --address "
                           "auto")
    resolved = _auto_address(notes) if address == "auto" else address
    host, port = _split(resolved, given=address)
    if not _answers(host, port):
        raise ClusterError(f"--address {address}: nothing answers at {host}:{port} within {TCP_TIMEOUT_S:.0f} s: start "
                           "the cluster (ray up / ray start --head) or fix the address")
    return f"{host}:{port}", notes


def _split(address: str, *, given: str) -> tuple[str, int]:
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {given!r}: expected host:port (e.g. 10.0.0.5:6379) or auto")
    return host, int(port)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=TCP_TIMEOUT_S):
            return True
    except OSError:
        return False


def _auto_address(notes: list[str]) -> str:
    """$RAY_ADDRESS, else the clusters running on this machine (as `ray.init("auto")` looks)."""
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env:
        return env
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    recorded = current.read_text().strip() if current.is_file() else ""
    running = sorted(local_gcs_addresses())
    if recorded and recorded not in running:
        try:
            live = _answers(*_split(recorded, given="auto"))
        except ClusterError:
            live = False
        if live:
            running.insert(0, recorded)
        else:
            notes.append(f"--address auto: {current} names {recorded}, where nothing answers (a stopped cluster): "
                         "ignored")
    if not running:
        raise ClusterError(f"--address auto found no running Ray cluster (no RAY_ADDRESS, no raylet on this machine, "
                           f"no live {current}): start one with `ray start --head` or `ray up`, or drop --address")
    if len(running) > 1:
        raise ClusterError(f"--address auto found {len(running)} Ray clusters on this machine ({', '.join(running)}): "
                           "pass the one to join as --address HOST:PORT")
    return running[0]


def local_gcs_addresses() -> set[str]:
    """The --gcs-address of every raylet running on this machine (Linux /proc; Ray's own
    discovery needs psutil, which the installed extras lack)."""
    found: set[str] = set()
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or not args[0].endswith(b"/raylet"):
            continue
        for arg in args:
            if arg.startswith(b"--gcs-address="):
                found.add(arg.split(b"=", 1)[1].decode())
    return found


# --- what the cluster holds ------------------------------------------------------------------------
def speaks_grpc(host: str, port: int, timeout_s: float = GRPC_TIMEOUT_S) -> bool:
    """Whether the server at host:port answers an HTTP/2 connection preface with its SETTINGS
    frame, as every gRPC server (a Ray GCS among them) does; an HTTP/1 server, a database or a
    silent listener does not. Seconds at most, no Ray involved."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            conn.sendall(HTTP2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # preface, empty SETTINGS
            head = b""
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    return False
                head += chunk
            return head[3] == 0x04  # frame type SETTINGS
    except OSError:
        return False


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> ClusterView:
    """Ask the GCS at `address` for its nodes and autoscaler, from a child process killed after
    `timeout_s`; ClusterError when it is not a Ray cluster or does not answer in time."""
    host, port = _split(address, given=address)
    if not speaks_grpc(host, port):
        raise ClusterError(f"--address {address}: something listens there, but it is not a Ray cluster (no gRPC "
                           "answer): pass the port `ray start --head` printed (default 6379)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_ROOT, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "study.nodes", "--probe", address]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"--address {address}: something listens there but no Ray cluster answered within "
                           f"{timeout_s:.0f} s (not a Ray GCS port?): pass the port `ray start --head` printed "
                           "(default 6379)") from None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        reason = " ".join((done.stderr.strip().splitlines() or ["no answer"])[-1].split())[:160]
        raise ClusterError(f"--address {address}: not a Ray cluster, or it refused the connection ({reason}): pass "
                           "the port `ray start --head` printed (default 6379)")
    return _view(json.loads(lines[-1]), address)


def _view(data: dict, address: str) -> ClusterView:
    nodes = [Node(node_id=n["node_id"], ip=n["ip"], host=n["host"], alive=n["alive"], head=n["head"],
                  resources={k: float(v) for k, v in n["resources"].items()}) for n in data["nodes"]]
    types = [NodeType(t["name"], {k: float(v) for k, v in t["resources"].items()}, int(t["max_count"]))
             for t in data["node_types"]] or bootstrap_node_types()
    monitor = [t for t in data.get("monitor_types", []) if not t.startswith(READONLY_NODE_TYPE)]
    return ClusterView(address=address, nodes=nodes, node_types=types, autoscaler=bool(types or monitor))


def bootstrap_node_types(path: Path = BOOTSTRAP_CONFIG) -> list[NodeType]:
    """The node types of a `ray up` cluster, from the config the launcher left on the head."""
    if not path.is_file():
        return []
    try:
        import yaml  # deferred: only on a head node that `ray up` set up

        config = yaml.safe_load(path.read_text()) or {}
        return [NodeType(name, {k: float(v) for k, v in (spec.get("resources") or {}).items()},
                         int(spec.get("max_workers", config.get("max_workers", 0))))
                for name, spec in (config.get("available_node_types") or {}).items()]
    except Exception:  # a config we cannot read: no node types known
        return []


def _probe_child(address: str) -> int:
    """In the child: print the cluster as one JSON line."""
    import ray._raylet as raylet  # deferred: the child only; the parent never blocks on it
    from ray.core.generated import autoscaler_pb2, gcs_pb2

    client = raylet.GcsClient(address=address)
    info = client.get_all_node_info(timeout=GCS_CALL_TIMEOUT_S)
    nodes = [{"node_id": nid.hex(), "ip": n.node_manager_address, "host": n.node_manager_hostname,
              "alive": n.state == gcs_pb2.GcsNodeInfo.ALIVE, "head": bool(n.is_head_node),
              "resources": dict(n.resources_total)} for nid, n in info.items()]
    raw = client.internal_kv_get(raylet.GCS_AUTOSCALER_CLUSTER_CONFIG_KEY.encode(),
                                 raylet.GCS_AUTOSCALER_STATE_NAMESPACE.encode(), timeout=GCS_CALL_TIMEOUT_S)
    config = autoscaler_pb2.ClusterConfig.FromString(raw) if raw else None
    types = [{"name": g.name, "resources": dict(g.resources), "max_count": g.max_count}
             for g in (config.node_group_configs if config else [])]
    status = client.internal_kv_get(AUTOSCALING_STATUS_KEY, None, timeout=GCS_CALL_TIMEOUT_S)
    mapping = (json.loads(status).get("autoscaler_report") or {}).get("node_type_mapping") if status else None
    print(json.dumps({"nodes": nodes, "node_types": types, "monitor_types": sorted(set((mapping or {}).values()))}))
    return 0


# --- python -m study.nodes ---------------------------------------------------------------------------
def table(view: ClusterView) -> list[str]:
    """The nodes, one line each, largest first; then the node types the autoscaler can add."""
    lines = [f"{'node':<16} {'alive':<5} {'CPU':>5} {'GPU':>5} {'memory':>9}  node_id"]
    for n in sorted(view.nodes, key=lambda n: (not n.alive, -n.resources.get("GPU", 0), -n.resources.get("CPU", 0))):
        memory = n.resources.get("memory", 0.0) / 1024**3
        lines.append(f"{n.label:<16} {'yes' if n.alive else 'no':<5} {n.resources.get('CPU', 0):>5g} "
                     f"{n.resources.get('GPU', 0):>5g} {memory:>7.1f}GB  {n.node_id}{'  (head)' if n.head else ''}")
    for t in view.node_types:
        count = "any number" if t.max_count < 0 else t.max_count
        lines.append(f"autoscaler node type {t.name}: CPU {t.resources.get('CPU', 0):g}, "
                     f"GPU {t.resources.get('GPU', 0):g}, up to {count}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m study.nodes", description="The nodes of a running Ray cluster.")
    parser.add_argument("--address", default="auto", help="host:port of the cluster's GCS, or auto (default)")
    parser.add_argument("--probe", metavar="ADDRESS", help=argparse.SUPPRESS)
    try:
        args = parser.parse_args(argv)
        if args.probe:
            return _probe_child(args.probe)
        address, notes = resolve_address(args.address)
        view = probe(address)
    except (UsageError, ClusterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in notes:
        print(note, file=sys.stderr)
    print(f"cluster {address}: {len(view.alive)} of {len(view.nodes)} nodes alive")
    print("\n".join(table(view)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
