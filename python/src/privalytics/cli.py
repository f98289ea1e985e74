"""Running the privalytics command line from Python, for what only it does
(client-side encryption, a franchise location's protocol steps)."""

from __future__ import annotations

import os
import subprocess
from typing import Any, List, Sequence

__all__ = ["cli", "cli_parallel"]


def _binary() -> str:
    return os.environ.get("PRIVALYTICS_BIN", "privalytics")


def cli(*args: Any, check: bool = True) -> str:
    """Runs `privalytics ARGS…` (the binary in $PRIVALYTICS_BIN, default on PATH)
    and returns its standard output; a failure raises with its output."""
    cmd = [_binary(), *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} … failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def cli_parallel(argvs: Sequence[Sequence[Any]], timeout: float = 300) -> List[str]:
    """Runs several privalytics commands at once (parties of a protocol that
    wait for each other) and returns their outputs in order; any failure raises."""
    procs = [subprocess.Popen([_binary(), *map(str, a)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for a in argvs]
    outs = []
    try:
        for p, a in zip(procs, argvs):
            out, _ = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f"privalytics {' '.join(map(str, a[:2]))} failed ({p.returncode}):\n{out}")
            outs.append(out)
    finally:
        for p in procs:  # one failed or timed out: the others would wait for it forever
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs
