"""The swarm backend: each running space is a Docker Swarm service of one replica.

Swarm places it (spread over the nodes, within each node's memory: the reservation equals the
limit, so a node is never overcommitted) and restarts it elsewhere when its node dies; the runner
still owns everything else, as with the local backend: a new version is a new service beside the
old one, routed once it answers, and the old one removed once its requests are done.

The image is the registry reference by digest that the builder recorded, so every node pulls the
same bytes from Spacedock's registry (the manager passes the registry login on with the service).
The app's port is published in host mode on the node that runs the task, and Caddy dials
<node address>:<port>: the ingress routing mesh needs IPVS, which some kernels lack, so it is never
used (endpoint mode dnsrr, no virtual IP).

Swarm's container spec on engine 20.10 cannot ask for no-new-privileges, a pids limit is set
through the raw resources, and there is no per-service runtime (gVisor): nodes run dockerd with
--no-new-privileges and --icc=false (docs/cluster.md).
"""

import logging
from collections.abc import Iterator
from datetime import datetime
from threading import Event

import docker
import docker.errors
import requests
import urllib3.exceptions
from django.conf import settings
from docker.types import ContainerSpec, DriverConfig, EndpointSpec, Placement, RestartPolicy, TaskTemplate

from runner import firewall, logstream
from runner.backend import Instance, RuntimeBackendError, Spec, parse_started
from runner.docker_runtime import errors  # one translation of engine errors, the same engine API
from spacedock.labels import LABEL_GENERATION, LABEL_INSTANCE, LABEL_SPACE, LABEL_TARGET

log = logging.getLogger(__name__)

# Task states, in Docker's container words (runner/backend.py).
STARTING = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
FAILED = {"failed", "rejected"}


def registry_password() -> str:
    if settings.REGISTRY_PASSWORD:
        return settings.REGISTRY_PASSWORD
    path = settings.DATA_DIR / "registry" / "password"
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise RuntimeBackendError(
            f"The registry's password cannot be read ({exc}): set SPACEDOCK_REGISTRY_PASSWORD for the runner."
        ) from None


def _created(task: dict) -> str:
    return task.get("CreatedAt", "")


class SwarmBackend:
    name = "swarm"
    # The manager cannot pause a container on another node: a sleeping space is removed (deep).
    can_freeze = False

    def __init__(self, base_url: str | None = None):
        self.base_url = base_url or settings.SWARM_DOCKER_HOST or None
        self._client: docker.DockerClient | None = None
        self.logged_in = False

    def client(self) -> docker.DockerClient:
        if self._client is None:
            with errors("connecting to the Swarm manager"):
                if self.base_url:
                    self._client = docker.DockerClient(base_url=self.base_url, timeout=60)
                else:
                    self._client = docker.from_env(timeout=60)
        return self._client

    def prepare(self) -> str:
        """The nodes' own firewalls keep spaces off the hosts (docs/cluster.md): nothing to refuse."""
        with errors("asking the Swarm manager"):
            info = self.client().info()
        if not info.get("Swarm", {}).get("ControlAvailable"):
            raise RuntimeBackendError(
                f"The engine at {self.base_url or 'DOCKER_HOST'} is not a Swarm manager "
                "(SPACEDOCK_SWARM_DOCKER_HOST names one; docs/cluster.md)"
            )
        if not self.logged_in:
            # The manager hands this login to the node that pulls the image (X-Registry-Auth).
            with errors(f"logging in to the registry {settings.REGISTRY}"):
                self.client().login(
                    settings.REGISTRY_USER, registry_password(), registry=settings.REGISTRY, reauth=True
                )
            self.logged_in = True
        # /healthz reads what the runner says of its firewall: on Swarm it is each node's own.
        firewall._report(
            "off", "the swarm backend: each node's firewall keeps spaces off it (docs/cluster.md)"
        )
        return ""

    # -- reading ---------------------------------------------------------------------------------

    def _nodes(self) -> dict[str, dict]:
        with errors("listing Swarm nodes"):
            return {n["ID"]: n for n in self.client().api.nodes()}

    def _instance(self, service: dict, tasks: list[dict], nodes: dict[str, dict]) -> Instance:
        tasks = sorted(tasks, key=_created, reverse=True)
        wanted = [t for t in tasks if t.get("DesiredState") == "running"]
        task = (wanted or tasks or [None])[0]
        failures = sum(1 for t in tasks if t["Status"]["State"] in FAILED)
        labels = service["Spec"].get("Labels") or {}
        if task is None:
            return Instance(id=service["ID"], status="created", labels=labels)
        # While Swarm moves a task (its node drained or down), the old one may still serve: it is
        # what Caddy reaches until the runner has a successor answering.
        serving = task if task["Status"]["State"] == "running" else None
        serving = serving or next((t for t in tasks if t["Status"]["State"] == "running"), None)
        state = task["Status"]["State"]
        if serving is not None:
            status, task = "running", serving
        elif state in STARTING:
            status = "restarting" if failures or len(tasks) > 1 else "created"
        else:
            status = "exited"
        node = nodes.get(task.get("NodeID", ""), {})
        address = node.get("Status", {}).get("Addr", "")
        ports = {}
        if status == "running":
            for port in (task["Status"].get("PortStatus") or {}).get("Ports") or []:
                ports[int(port["TargetPort"])] = int(port["PublishedPort"])
        unschedulable = ""
        err = task["Status"].get("Err", "")
        if state == "pending" and "no suitable node" in err:
            unschedulable = err
        usable = (
            node.get("Status", {}).get("State") == "ready"
            and node.get("Spec", {}).get("Availability") == "active"
        )
        return Instance(
            id=service["ID"],
            status=status,
            labels=labels,
            address=address,
            ports=ports,
            restart_count=max(0, failures - 1) if status == "exited" else failures,
            exit_code=(task["Status"].get("ContainerStatus") or {}).get("ExitCode"),
            started_at=parse_started(task["Status"].get("Timestamp", "")) if status == "running" else None,
            node=f"{node.get('Description', {}).get('Hostname', '?')} {address}" if node else "",
            unschedulable=unschedulable,
            moving=status == "running" and not usable,
        )

    def _services(self, filters: dict) -> list[Instance]:
        with errors("listing services"):
            services = self.client().api.services(filters=filters)
            services = [
                s
                for s in services
                if (s["Spec"].get("Labels") or {}).get(LABEL_INSTANCE) == settings.INSTANCE
            ]
            if not services:
                return []
            tasks = self.client().api.tasks(filters={"service": [s["ID"] for s in services]})
        nodes = self._nodes()
        by_service: dict[str, list[dict]] = {}
        for task in tasks:
            by_service.setdefault(task["ServiceID"], []).append(task)
        return [self._instance(s, by_service.get(s["ID"], []), nodes) for s in services]

    def instances(self, space_id: int | None = None) -> list[Instance]:
        labels = [f"{LABEL_INSTANCE}={settings.INSTANCE}", LABEL_GENERATION]
        if space_id is not None:
            labels.append(f"{LABEL_SPACE}={space_id}")
        return self._services({"label": labels})

    def get(self, instance_id: str) -> Instance | None:
        if not instance_id:
            return None
        found = self._services({"id": [instance_id]})
        return next((i for i in found if i.id == instance_id or i.id.startswith(instance_id)), None)

    def node_report(self) -> list[dict]:
        """Each node: name, address, state, availability, labels, memory, memory reserved by running
        tasks (anyone's: Swarm counts them all), and this instance's services on it."""
        nodes = self._nodes()
        with errors("listing tasks"):
            tasks = self.client().api.tasks(filters={"desired-state": "running"})
        report = {
            node_id: {
                "id": node_id,
                "hostname": node["Description"].get("Hostname", ""),
                "address": node["Status"].get("Addr", ""),
                "state": node["Status"].get("State", ""),
                "availability": node["Spec"].get("Availability", ""),
                "labels": node["Spec"].get("Labels") or {},
                "memory": node["Description"].get("Resources", {}).get("MemoryBytes", 0),
                "reserved": 0,
                "services": [],
            }
            for node_id, node in nodes.items()
        }
        for task in tasks:
            entry = report.get(task.get("NodeID", ""))
            if entry is None:
                continue
            reservation = task["Spec"].get("Resources", {}).get("Reservations", {}).get("MemoryBytes", 0)
            entry["reserved"] += reservation
            entry["services"].append(task["ServiceID"])
        return sorted(report.values(), key=lambda n: (n["address"], n["id"]))

    # -- changing --------------------------------------------------------------------------------

    def run(self, spec: Spec) -> Instance:
        labels = {
            LABEL_INSTANCE: settings.INSTANCE,
            LABEL_SPACE: str(spec.space_id),
            LABEL_TARGET: spec.target,
            LABEL_GENERATION: str(spec.generation),
            **spec.labels,
        }
        memory = spec.memory_mb * 2**20
        container = ContainerSpec(
            spec.image,
            env={**spec.env, "PORT": str(spec.app_port)},
            user=settings.RUN_USER,
            labels=labels,
            init=True,
            cap_drop=["ALL"],
            # When Swarm moves a task (a drained node), the old one keeps serving until its successor
            # answers and the runner has moved the route: the stop signal is one apps ignore, and
            # the kill comes after the grace period. The runner removes a service only once its
            # route is gone and its requests are done.
            stop_signal="SIGWINCH",
            stop_grace_period=settings.SWARM_STOP_GRACE * 10**9,
            # Bind mounts: their sources must be shared storage at the same path on every node.
            mounts=spec.mounts or None,
        )
        reservations = {"MemoryBytes": memory}
        if spec.gpus:
            # Swarm has no device requests: a node advertises its GPUs as generic resources
            # (dockerd --node-generic-resource NVIDIA-GPU=<uuid>), and Swarm hands each task as many
            # as it reserves, never one another task holds (docs/cluster.md).
            reservations["GenericResources"] = [
                {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": len(spec.gpus)}}
            ]
        template = TaskTemplate(
            container,
            # The reservation is the limit: Swarm places a space only where its memory is free.
            resources={
                "Limits": {"MemoryBytes": memory, "NanoCPUs": int(spec.cpus * 1e9), "Pids": spec.pids},
                "Reservations": reservations,
            },
            restart_policy=RestartPolicy(condition="on-failure", max_attempts=settings.RUN_RESTART_RETRIES),
            placement=Placement(constraints=spec.constraints or None),
            log_driver=DriverConfig("json-file", {"max-size": "10m", "max-file": "2"}),
        )
        endpoint = EndpointSpec(
            mode="dnsrr", ports=[{"Protocol": "tcp", "TargetPort": spec.app_port, "PublishMode": "host"}]
        )
        name = f"{settings.INSTANCE}-{spec.name_hint}-{datetime.now().strftime('%H%M%S%f')[-6:]}"
        self.prepare()
        with errors(f"creating a service for {spec.image}"):
            created = self.client().api.create_service(
                template, name=name, labels=labels, endpoint_spec=endpoint
            )
        found = self.get(created["ID"])
        if found is None:
            raise RuntimeBackendError(f"the service {name} vanished as it was created")
        return found

    def stop(self, instance_id: str) -> None:
        # A service is not stopped and kept: its task stops (SIGTERM, then SIGKILL) as it is removed.
        self.remove(instance_id)

    def remove(self, instance_id: str) -> None:
        try:
            with errors(f"removing service {instance_id[:12]}"):
                self.client().api.remove_service(instance_id)
        except RuntimeBackendError as exc:
            if not isinstance(exc.__cause__, docker.errors.NotFound):
                raise

    def warm(self) -> None:
        pass  # no warm pool: a pool container would have to be on the node Swarm places a task on

    def freeze(self, instance_id: str) -> None:
        raise RuntimeBackendError("the swarm backend cannot freeze a space (can_freeze is False)")

    thaw = freeze

    def memory(self, instance_id: str) -> int:
        return 0  # never frozen: nothing of a sleeping space is held on any node

    # -- logs and events -------------------------------------------------------------------------

    def exit_code(self, instance: Instance) -> int | None:
        return instance.exit_code  # the failed task's own status keeps its code

    def tail(self, instance_id: str, lines: int = 30) -> str:
        try:
            with errors(f"reading the log of {instance_id[:12]}"):
                chunks = self.client().api.service_logs(instance_id, stdout=True, stderr=True, tail=lines)
                raw = b"".join(chunks)
            return raw.decode("utf-8", "replace").rstrip()
        except RuntimeBackendError as exc:
            return f"(no log: {exc})"

    def follow(self, instance_id: str, since: int | None = None) -> Iterator[str]:
        with errors(f"following the log of {instance_id[:12]}"):
            stream = self.client().api.service_logs(
                instance_id, stdout=True, stderr=True, follow=True, since=since or 0
            )
        try:
            yield from logstream.split_lines(stream)
        except (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError):
            return  # the node went away mid-stream (a killed node's task)

    def events(self, stop_flag: Event) -> Iterator[tuple[str, int | None, str]]:
        """Service and node changes; a task's own moves have no events, the runner's timer sees them."""
        try:
            with errors("listening to Swarm events"):
                url = self.base_url
                client = (
                    docker.DockerClient(base_url=url, timeout=None) if url else docker.from_env(timeout=None)
                )
                stream = client.events(decode=True, filters={"type": ["service", "node"]})
        except RuntimeBackendError:
            return
        try:
            for event in stream:
                if stop_flag.is_set():
                    return
                yield ("changed", None, event.get("id", ""))
        except (docker.errors.DockerException, requests.RequestException):
            return
        finally:
            stream.close()
