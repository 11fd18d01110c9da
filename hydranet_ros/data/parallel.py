"""Running one function over many inputs: in local processes, or as tasks on a Ray cluster.

Fleet archives outgrow one machine, and Ray already schedules, retries and places work on a cluster,
so bags go to Ray as they are instead of to a scheduler of our own. Ray is optional (`pip install ray`);
only --ray needs it. Each job's arguments must be picklable and its function must do all its work from
them (open its own files, build its own models), since it runs in another process or on another machine.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from hydranet_ros.errors import CommandError

LOCAL_RAY = "local"  # --ray local: start a Ray of --workers CPUs on this machine for this run


def run_in_processes(function, jobs: list[tuple], workers: int, progress: bool = True) -> list:
    """function(*job) for every job in `workers` processes; results in the jobs' order."""
    from tqdm import tqdm
    # spawn: a forked process would inherit the parent's threads (ONNX Runtime, torch) in any state
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        for future in tqdm(futures, desc="bags", unit="bag", disable=not progress):
            future.exception()  # waits; errors are raised below, in order
        return [future.result() for future in futures]


def run_on_ray(function, jobs: list[tuple], address: str, workers: int = 2) -> list:
    """function(*job) for every job as Ray tasks on the cluster at `address` ("auto": the one this
    machine belongs to; "local": a new one of `workers` CPUs here); results in the jobs' order."""
    try:
        import ray
    except ImportError:
        raise CommandError("--ray needs Ray: pip install ray") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address == LOCAL_RAY:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise CommandError(f"cannot reach the Ray cluster at {address}: {error}") from None
    try:
        task = ray.remote(num_cpus=1)(function)
        return ray.get([task.remote(*job) for job in jobs])
    except ray.exceptions.RayTaskError as error:
        cause = error.as_instanceof_cause()
        raise cause from None
    finally:
        if started_here:
            ray.shutdown()
