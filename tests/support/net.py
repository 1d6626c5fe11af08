"""The network helpers tests share with the benchmark harness (one home: bench/net.py)."""

from bench.net import START_TIMEOUT_S, free_port, log_tail, wait_healthy

__all__ = ["START_TIMEOUT_S", "free_port", "log_tail", "wait_healthy"]
