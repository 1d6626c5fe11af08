"""One vLLM engine core, several front-end processes (vLLM's `--api-server-count`, docs/scaling.md).

The parent starts the engine core once (`engine_core`); each front-end builds an `AsyncLLM` client of it (`attach`)
with its own ZMQ sockets, so requests, aborts, LoRA loads and health checks go over its own connection. The same
engine arguments on both sides, with `_api_process_count` N and `_api_process_rank` -1 (the parent) or i. vLLM is
imported by the callers' threads before these run (local.import_vllm).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def _config(engine_args: Any, count: int, rank: int) -> Any:
    """vLLM's config for one side, made as `AsyncLLM.from_engine_args` makes it for a single process."""
    from vllm.usage.usage_lib import UsageContext

    engine_args._api_process_count = count
    engine_args._api_process_rank = rank
    return engine_args.create_engine_config(UsageContext.ENGINE_CONTEXT)


def _client(sockets: dict[str, Any], coordinator: Any, tensor_queue: Any, count: int, index: int) -> dict[str, Any]:
    client = dict(sockets, client_count=count, client_index=index)
    if coordinator is not None:
        client["stats_update_address"] = coordinator.get_stats_publish_address()
    if tensor_queue is not None:
        client["tensor_queue"] = tensor_queue
    return client


@contextlib.contextmanager
def engine_core(
    engine_args: Any, count: int, start: Callable[[dict[str, Any]], Any]
) -> Iterator[tuple[list[Any], list[Any]]]:
    """Start the engine core for `count` front-ends. `start(client)` starts one front-end with its connection
    (`client`, picklable: pass it to a spawned process) and returns its process; the engine's handshake waits for
    them. Yields those processes and the engine core's process sentinels (ready when it ends) once the engine core
    is ready; stops the engine core at exit."""
    from vllm.v1.engine import utils as core_utils
    from vllm.v1.executor import Executor

    config = _config(engine_args, count, -1)
    executor, log_stats = Executor.get_class(config), not engine_args.disable_log_stats
    listeners = None
    if hasattr(core_utils, "bind_engine_zmq_listeners"):  # vLLM 0.32: the parent binds, each front-end adopts
        listeners = core_utils.bind_engine_zmq_listeners(config, count)
        with core_utils.launch_core_engines(config, executor, log_stats, listeners.addresses) as launch:
            procs = []
            for i, (inp, out) in enumerate(zip(listeners.inputs, listeners.outputs, strict=True)):
                sockets = {"input_address": inp.address, "output_address": out.address}
                sockets |= {"input_listener": inp.socket, "output_listener": out.socket}
                procs.append(start(_client(sockets, launch.coordinator, launch.tensor_queue, count, i)))
                inp.close()
                out.close()
            launch.watched_frontend_processes = procs
        manager, coordinator = launch.engine_manager, launch.coordinator
    else:  # vLLM 0.26: one engine's addresses are ipc:// paths each front-end binds itself
        addresses = core_utils.get_engine_zmq_addresses(config, count)
        with core_utils.launch_core_engines(config, executor, log_stats, addresses, count) as launched:
            manager, coordinator, addresses, tensor_queue = launched
            pairs = zip(addresses.inputs, addresses.outputs, strict=True)
            procs = [
                start(_client({"input_address": a, "output_address": b}, coordinator, tensor_queue, count, i))
                for i, (a, b) in enumerate(pairs)
            ]
    try:
        yield procs, manager.sentinels() if manager is not None else []
    finally:
        if manager is not None:
            manager.shutdown()
        if coordinator is not None:
            coordinator.shutdown()
        if listeners is not None:
            listeners.cleanup()


def attach(engine_args: Any, client: dict[str, Any], stat_loggers: list[Any]) -> Any:
    """This front-end's `AsyncLLM`, a client of the engine core `engine_core` started (blocks until it is ready)."""
    from vllm.v1.engine.async_llm import AsyncLLM

    addresses = dict(client)
    count, index = addresses.pop("client_count"), addresses.pop("client_index")
    config = _config(engine_args, count, index)
    return AsyncLLM.from_vllm_config(
        config,
        stat_loggers=stat_loggers,
        enable_log_requests=engine_args.enable_log_requests,
        disable_log_stats=engine_args.disable_log_stats,
        client_addresses=addresses,
        client_count=count,
        client_index=index,
    )
