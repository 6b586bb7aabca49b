"""A real two-node Ray cluster on this machine (a head and one worker node, one CPU each),
started with ray.cluster_utils.Cluster from this process; `pe-bench run --address` must spread
the trials over both nodes, and tearing the cluster down must leave no process of it behind.

The nodes use the machine's own address, not 127.0.0.1: `ray.init(address=...)` rewrites a
loopback address to the node's IP, which a head bound to loopback does not listen on (the
driver then retries forever)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pe_bench.store.results import scan
from tests.integration._support import REPO, cli_env, descendants, pe_bench, write_suite

pytestmark = pytest.mark.ray
NODE = {"num_cpus": 1, "include_dashboard": False}


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch):
    """Head + worker node, owned by this process (no Ray driver session here); their workers
    import the test hooks from the repository."""
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    monkeypatch.setenv("PYTHONPATH", cli_env()["PYTHONPATH"])
    monkeypatch.syspath_prepend(str(REPO))
    before = descendants(os.getpid())
    nodes = cluster_utils.Cluster(initialize_head=True, head_node_args=NODE)
    try:
        nodes.add_node(**NODE)
        yield nodes
    finally:
        nodes.shutdown()
        deadline = time.monotonic() + 30
        while descendants(os.getpid()) - before and time.monotonic() < deadline:
            time.sleep(0.2)
        stray = descendants(os.getpid()) - before
        for pid in stray:  # only processes this fixture started
            os.kill(pid, signal.SIGKILL)
        assert not stray, f"cluster processes outlived its shutdown: {stray}"


def test_trials_run_on_both_nodes(cluster, tmp_path: Path) -> None:
    # two cells that wait for each other (test-barrier): with one CPU per node and one per
    # trial, they can only run at once on different nodes, however late Tune sees the second
    barrier = {"name": "test-barrier", "params": {"folder": str(tmp_path / "barrier")}}
    suite = write_suite(tmp_path / "cluster.yaml", "cluster", seeds=[0, 1], attacks=["none"],
                        defenses=[barrier])
    store = tmp_path / "store"
    # the driver is a subprocess: a driver that cannot reach the cluster retries forever in
    # native code, out of reach of any in-process timeout
    command = pe_bench("run", suite, "--store", store, "--address", cluster.address, "--no-leaderboard")
    try:
        run = subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True,
                             timeout=180, start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the run on the cluster hung:\n{exc.stderr}") from None
    assert run.returncode == 0, run.stderr[-3000:]
    rows = scan(store, "cluster").to_pylist()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    node_ids = {cluster.head_node.node_id, *(n.node_id for n in cluster.worker_nodes)}
    assert len(node_ids) == 2
    assert {r["node_id"] for r in rows} == node_ids
