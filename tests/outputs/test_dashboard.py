"""`dashboard` serves the study on the loopback address only."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from typer.testing import CliRunner

runner = CliRunner()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port):
    """Local addresses with a listening TCP socket on ``port``, from /proc/net/tcp*."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        for line in open(name).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if int(p, 16) == port and state == "0A":  # 0A: LISTEN
                found.add(addr)
    return found


def test_dashboard_serves_the_study_on_loopback_only(study_dir):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_search",
            "dashboard",
            "--port",
            str(port),
        ],
        cwd=study_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        studies = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    studies = json.load(r)["study_summaries"]
                break
            except OSError:
                time.sleep(0.5)
        assert studies is not None, proc.stdout.read1().decode() if proc.poll() is not None else ""
        (summary,) = [s for s in studies if s["study_name"] == "budget-20000"]
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=10
        ) as r:
            detail = json.load(r)
        keys = {a["key"] for a in detail["union_user_attrs"]}
        assert {"n_params", "architecture", "weights_artifact_id"} <= keys
        trial = detail["trials"][0]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert int(attrs["n_params"]) <= 20000 and trial["state"] in ("Complete", "Pruned")
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
    finally:
        proc.terminate()
        proc.wait(timeout=10)
