"""Device mesh and data-parallel helpers: the one place where devices are named.

Data parallelism is sharded `jit` over a 1-D `Mesh` with a ``data`` axis: batches are
split along their leading axis, parameters and optimizer states are replicated, and XLA
inserts the gradient all-reduce. The same code runs on one CPU, many local devices, or
many hosts after `initialize_distributed`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Joins JAX's multi-controller runtime (auto-detects the cluster where JAX supports it)."""
    kwargs = {}
    if coordinator_address:
        kwargs["coordinator_address"] = coordinator_address
    if num_processes is not None:
        kwargs["num_processes"] = num_processes
    if process_id is not None:
        kwargs["process_id"] = process_id
    jax.distributed.initialize(**kwargs)


def is_main_process() -> bool:
    """True on the process that logs and writes results (process 0)."""
    return jax.process_index() == 0


def make_mesh(num_devices: int | None = None, devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D ``data`` mesh over all (or the first ``num_devices``) global devices."""
    if devices is None:
        devices = jax.devices()
        if num_devices is not None:
            if num_devices < 1 or num_devices > len(devices):
                raise ValueError(
                    f"num_devices={num_devices} but {len(devices)} device(s) are available "
                    f"({devices[0].platform}); on CPU, force more with "
                    f"XLA_FLAGS=--xla_force_host_platform_device_count=N")
            devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def num_data_shards(mesh: Mesh) -> int:
    """How many ways the leading batch axis is split."""
    return mesh.shape[DATA_AXIS]


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
    """Raises a clear error when a global batch does not divide over the mesh's devices."""
    n = num_data_shards(mesh)
    if batch_size < 1 or batch_size % n:
        raise ValueError(
            f"{what}={batch_size} must be a positive multiple of the device count {n} "
            f"(data parallelism splits the batch evenly); try {max(n, n * math.ceil(batch_size / n))}")


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over ``data``; the rest replicated."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Fully replicated on every device of the mesh."""
    return NamedSharding(mesh, P())


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Places a host batch (global leading axis) on the mesh, split over ``data``.

    Under several processes each process passes its own slice of the global batch.
    """
    sharding = data_sharding(mesh)

    def put(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if x.ndim == 0:
            raise ValueError("shard_batch needs arrays with a leading batch axis, got a scalar")
        if jax.process_count() > 1:
            return jax.make_array_from_process_local_data(sharding, np.asarray(x))
        check_batch_size(x.shape[0], mesh, what="leading batch axis")
        return jax.device_put(x, sharding)

    return jax.tree_util.tree_map(put, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree (parameters, optimizer state, keys) on every device of the mesh."""
    return jax.device_put(tree, replicated_sharding(mesh))


def to_host(tree: Any) -> Any:
    """A pytree of (possibly sharded) arrays as numpy arrays of their global values.

    Under several processes an array split over the mesh spans devices this process cannot
    read: every process then gathers it (a collective, so every process must call this at the
    same point); replicated arrays are read locally.
    """
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def describe(mesh: Mesh) -> dict:
    """A JSON-able description of the devices in use, for result records."""
    d = mesh.devices.flat[0]
    return {"platform": d.platform, "device_kind": getattr(d, "device_kind", ""),
            "num_devices": int(mesh.devices.size), "process_count": jax.process_count()}
