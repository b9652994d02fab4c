"""What a container of a space on a flavour is given: pure, so the spec can be tested without Docker."""

import os
from dataclasses import dataclass, field

from docker.types import DeviceRequest

from spacedock.hardware.flavours import Flavour


@dataclass
class Resources:
    """Keyword arguments for docker-py's containers.create, plus the flavour's environment."""

    flavour: str
    nano_cpus: int
    mem_limit: str
    memswap_limit: str
    device_requests: list[DeviceRequest] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cpus(self) -> float:
        return self.nano_cpus / 1e9

    @property
    def memory_mb(self) -> int:
        return int(self.mem_limit.removesuffix("m"))

    @property
    def gpu_ids(self) -> list[str]:
        return [gpu for request in self.device_requests for gpu in request.device_ids or []]

    def create_kwargs(self) -> dict:
        """What to pass to containers.create (the env goes into `environment` with the space's own)."""
        kwargs = {
            "nano_cpus": self.nano_cpus,
            "mem_limit": self.mem_limit,
            "memswap_limit": self.memswap_limit,
        }
        if self.device_requests:
            kwargs["device_requests"] = self.device_requests
        return kwargs


def gpu_request(gpu_ids: list[str]) -> DeviceRequest:
    """The engine's request for exactly these GPUs (the NVIDIA runtime, or CDI where configured)."""
    return DeviceRequest(driver="nvidia", device_ids=list(gpu_ids), capabilities=[["gpu"]])


def container_resources(
    flavour: Flavour,
    gpu_ids: list[str],
    cpu_override: float | None = None,
    memory_override: int | None = None,
    host_cpus: int | None = None,
) -> Resources:
    """The limits and devices for `flavour`, with exactly the GPUs in `gpu_ids` (from GpuAssignment).

    An administrator's per-space limits (Space.cpu_limit, memory_limit_mb) win over the flavour's.
    GPUs are requested by id, never by count: a count lets the engine pick any GPU, including one
    another space holds.
    """
    if flavour.gpus and len(gpu_ids) != flavour.gpus:
        raise ValueError(f"{flavour.name} needs {flavour.gpus} GPU(s), {len(gpu_ids)} assigned")
    # Docker refuses a CPU limit above the engine's cores ("Range of CPUs is from 0.01 to 2.00"):
    # a flavour bigger than this host gets the whole host. host_cpus: the engine's (docker info's
    # NCPU) where it is not this machine.
    cpus = min(cpu_override or flavour.cpus, host_cpus or os.cpu_count() or 1)
    memory = memory_override or flavour.memory_mb
    env = {"SPACE_HARDWARE": flavour.name}
    requests = []
    if gpu_ids:
        requests.append(gpu_request(gpu_ids))
        # The NVIDIA runtime reads these; inside the container the GPUs are numbered from 0.
        env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
    return Resources(
        flavour=flavour.name,
        nano_cpus=int(cpus * 1e9),
        mem_limit=f"{memory}m",
        memswap_limit=f"{memory}m",
        device_requests=requests,
        env=env,
    )
