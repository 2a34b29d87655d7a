"""Check a Ray cluster launcher config offline, before `ray up`:

    python -m study.validate_cluster cluster.yaml

Runs Ray's own ``prepare_config`` and ``validate_config`` (the schema `ray up` applies). Prints
one line: ``ok: ...`` (exit 0) or ``error: <file>: <what is wrong>`` on stderr (exit 2), never a
traceback. A file that is missing, not YAML, or not a mapping is reported the same way.
"""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config


def validate(path: str) -> str:
    """The prepared config's one-line summary; ValueError with a one-line message if invalid."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{path}: no such file: pass the cluster config (e.g. cluster.yaml)")
    try:
        config = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ValueError(f"{path}: not valid YAML{at} ({problem}): fix the syntax") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of cluster settings, got {type(config).__name__}")
    try:
        logging.getLogger("ray.autoscaler").setLevel(logging.WARNING)  # its INFO notes would add lines
        prepared = prepare_config(copy.deepcopy(config))
        validate_config(prepared)
    except Exception as e:  # jsonschema.ValidationError, click.ClickException, KeyError, ValueError ...
        text = getattr(e, "message", None) or getattr(e, "format_message", lambda: None)() or str(e) or type(e).__name__
        where = "/".join(str(x) for x in getattr(e, "absolute_path", []) or [])
        text = " ".join(str(text).split())[:300]
        raise ValueError(f"{path}: invalid cluster config{f' at {where}' if where else ''}: {text} "
                         "(see Ray's cluster launcher schema)") from None
    types = prepared.get("available_node_types") or {}
    return (f"ok: {path}: provider {prepared.get('provider', {}).get('type')}, "
            f"{len(types)} node type(s), max_workers {prepared.get('max_workers')}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 1 or argv[0].startswith("-"):
        print("error: usage: python -m study.validate_cluster CLUSTER.yaml", file=sys.stderr)
        return 2
    try:
        print(validate(argv[0]))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
