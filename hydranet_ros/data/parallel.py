"""Running one function over many inputs: in local processes, or as tasks on a Ray cluster.

Fleet archives outgrow one machine, and Ray already schedules, retries and places work on a cluster,
so bags go to Ray as they are instead of to a scheduler of our own. Ray is optional (`pip install ray`);
only --ray needs it. Each job's arguments must be picklable and its function must do all its work from
them (open its own files, build its own models), since it runs in another process or on another machine.
"""
from __future__ import annotations

import multiprocessing

from hydranet_ros.errors import CommandError

LOCAL_RAY = "local"  # --ray local: start a Ray of --workers CPUs on this machine for this run


def run_in_processes(function, jobs: list[tuple], workers: int, progress: bool = True) -> list:
    """function(*job) for every job in `workers` processes; results in the jobs' order. A job starts only
    when a worker is free, so a failed job lets only those already running end theirs before its error is
    raised; an interrupt (SIGINT, or SIGTERM through the command line's handler) terminates the workers at
    once: none goes on writing after the command has ended."""
    from tqdm import tqdm
    # spawn: a forked process would inherit the parent's threads (ONNX Runtime, torch) in any state
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
        results, running = [None] * len(jobs), []
        with tqdm(total=len(jobs), desc="bags", unit="bag", disable=not progress) as bar:
            for index, job in enumerate(jobs):
                while len(running) >= workers:
                    running = _collect(running, results, bar)
                running.append((index, pool.apply_async(function, job)))
            while running:
                running = _collect(running, results, bar)
        return results
    except KeyboardInterrupt:
        pool.terminate()
        raise
    finally:
        pool.close()
        pool.join()


def _collect(running: list, results: list, bar) -> list:
    """Waits for one of the running jobs to end; stores its result (or raises its error) and returns the rest."""
    while True:
        for position, (index, result) in enumerate(running):
            if result.ready():
                results[index] = result.get()  # a failed job raises here
                bar.update(1)
                return running[:position] + running[position + 1:]
        running[0][1].wait(0.05)


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
        refs = [task.remote(*job) for job in jobs]
        try:
            return ray.get(refs)
        except BaseException:  # interrupted or failed: no task goes on writing
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
    except ray.exceptions.RayTaskError as error:
        cause = error.as_instanceof_cause()
        raise cause from None
    finally:
        if started_here:
            ray.shutdown()
