"""How the swarm backend reads a service's tasks into what the reconcile loop acts on (pure: the
real swarm is tests/test_cluster.py)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from runner.backend import Instance
from runner.swarm import SwarmBackend
from spacedock.settings import envchoice

pytestmark = pytest.mark.fast

SERVICE = {"ID": "svc1", "Spec": {"Labels": {"spacedock.space": "7"}}}
NODES = {
    "n1": {"Status": {"State": "ready", "Addr": "198.18.210.11"}, "Spec": {"Availability": "active"},
           "Description": {"Hostname": "one"}},
    "n2": {"Status": {"State": "ready", "Addr": "198.18.210.12"}, "Spec": {"Availability": "drain"},
           "Description": {"Hostname": "two"}},
    "n3": {"Status": {"State": "down", "Addr": "198.18.210.13"}, "Spec": {"Availability": "active"},
           "Description": {"Hostname": "three"}},
}  # fmt: skip


def task(
    state: str, node: str = "n1", desired: str = "running", created: str = "2026-01-01T00:00:01Z", **status
):
    ports = {"Ports": [{"TargetPort": 7860, "PublishedPort": 30001}]} if state == "running" else {}
    return {
        "ServiceID": "svc1",
        "NodeID": node,
        "DesiredState": desired,
        "CreatedAt": created,
        "Status": {"State": state, "PortStatus": ports, "Timestamp": "2026-01-01T00:00:05Z", **status},
    }


def read(*tasks) -> Instance:
    return SwarmBackend(base_url="unix:///nonexistent")._instance(SERVICE, list(tasks), NODES)


def test_a_running_task_is_dialled_on_its_node():
    found = read(task("running"))
    assert (found.status, found.dial(7860), found.moving) == ("running", "198.18.210.11:30001", False)
    assert found.started_at is not None and found.port() == 30001


def test_a_task_on_a_drained_or_dead_node_is_moving_and_still_dialled_there():
    assert read(task("running", node="n2")).moving
    # Swarm made a successor that waits; the old task on the dead node is what Caddy still has.
    found = read(
        task("running", node="n3", desired="shutdown"),
        task("pending", node="", created="2026-01-01T00:00:09Z"),
    )
    assert (found.status, found.address, found.moving) == ("running", "198.18.210.13", True)


def test_no_node_matching_is_said():
    err = "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    found = read(task("pending", node="", Err=err))
    assert found.status == "created" and found.unschedulable == err


def test_starting_and_crashing():
    assert read(task("preparing")).status == "created"
    restarting = read(
        task("failed", desired="shutdown", ContainerStatus={"ExitCode": 3}),
        task("starting", created="2026-01-01T00:00:09Z"),
    )
    assert restarting.status == "restarting" and restarting.restart_count == 1
    # Out of restarts (1 + 3 failed tasks): the loop's "crashed for good".
    given_up = read(
        *[
            task("failed", ContainerStatus={"ExitCode": 3}, created=f"2026-01-01T00:00:0{i}Z")
            for i in range(4)
        ]
    )
    assert (given_up.status, given_up.exit_code, given_up.restart_count) == ("exited", 3, 3)


def test_backend_setting_is_checked(monkeypatch):
    monkeypatch.setenv("SPACEDOCK_RUNTIME_BACKEND", "kubernetes")
    with pytest.raises(ImproperlyConfigured, match="expected one of local, swarm"):
        envchoice("SPACEDOCK_RUNTIME_BACKEND", "local", ("local", "swarm"))
