"""Where the shards of a campaign run: in this process, in a pool of processes,
or as Ray tasks (on a cluster at an address, or a local Ray started here).
Each engine maps a function over tasks and returns the results in task order,
whatever order they finished in, so the campaign does not depend on it. Or,
given on_result, hands each result to it as it arrives and keeps none (a
consumer that puts each result in its own place: the parent holds no list of
every shard's result while the rest run)."""
from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
from collections.abc import Callable

from bridge_emu.campaign.spec import CampaignError
from bridge_emu.errors import BridgeEmuError

ENGINES = ("local", "processes", "ray")
RAY_MISSING = "--engine ray needs Ray, an optional extra: pip install 'bridge-emu[ray]' (or pip install 'ray>=2.9')"


def _keep(out: list, k: int, result, on_result: Callable | None) -> None:
    if on_result is None:
        out[k:k + 1] = [result]
    else:
        on_result(result)
        out[k:k + 1] = [None]


class LocalEngine:
    name = "local"
    workers = 1

    def map(self, fn: Callable, tasks: list, on_done: Callable[[int], None] | None = None,
            on_result: Callable | None = None) -> list:
        out = []
        for t in tasks:
            _keep(out, len(out), fn(*t), on_result)
            if on_done is not None:
                on_done(1)
        return out

    def close(self) -> None:
        pass


class ProcessEngine:
    name = "processes"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        # spawn: the workers start clean (no threads or C state inherited from the parent)
        self.pool = concurrent.futures.ProcessPoolExecutor(self.workers,
                                                           mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn: Callable, tasks: list, on_done: Callable[[int], None] | None = None,
            on_result: Callable | None = None) -> list:
        futures = {self.pool.submit(fn, *t): k for k, t in enumerate(tasks)}
        out = [None] * len(tasks)
        for f in concurrent.futures.as_completed(futures):
            _keep(out, futures.pop(f), f.result(), on_result)   # pop: the future lets go of its result
            if on_done is not None:
                on_done(1)
        return out

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class RayEngine:
    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise CampaignError(RAY_MISSING) from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            where = address or "a local Ray"
            if address:
                _check_reachable(address)
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                else:
                    ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                             logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise CampaignError(f"--engine ray: cannot start or reach {where}: "
                                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.workers = int(ray.cluster_resources().get("CPU", workers or 1))
        self._remote: dict = {}

    def map(self, fn: Callable, tasks: list, on_done: Callable[[int], None] | None = None,
            on_result: Callable | None = None) -> list:
        ray = self.ray
        remote = self._remote.setdefault(fn, ray.remote(num_cpus=1)(fn))
        refs = [remote.remote(*t) for t in tasks]
        index = {r: k for k, r in enumerate(refs)}
        out = [None] * len(tasks)
        pending, refs = refs, None       # a result leaves the object store once read
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                try:
                    _keep(out, index.pop(r), ray.get(r), on_result)
                except ray.exceptions.RayTaskError as e:
                    # an anticipated refusal inside a task stays the one-line error it is
                    if isinstance(getattr(e, "cause", None), BridgeEmuError):
                        raise e.cause from None
                    raise
                if on_done is not None:
                    on_done(1)
        return out

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A cluster address that nothing answers is one line at once: Ray itself would
    retry it for minutes. Addresses that are not HOST:PORT ("auto", "local") are
    left to Ray; a ray:// address is probed at its client port."""
    import socket
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise CampaignError(f"--engine ray: cannot start or reach {address}: nothing answers there "
                            f"({e.strerror or type(e).__name__}); is the cluster up (ray start --head)?") from None


def engine(name: str, workers: int | None = None, address: str | None = None):
    if name == "local":
        if workers not in (None, 1):
            raise CampaignError("--engine local runs in this one process: --workers is for processes or ray")
        return LocalEngine()
    if name == "processes":
        return ProcessEngine(workers)
    if name == "ray":
        return RayEngine(workers, address)
    raise CampaignError(f"--engine {name!r}: want one of {', '.join(ENGINES)}")
