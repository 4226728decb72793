"""System metrics on request (``tracking.system_metrics=true``): MLflow's own sampler."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from omegaconf import DictConfig

from benchmark.errors import ConfigError
from benchmark.tracking.run import TrackedRun


@contextlib.contextmanager
def system_metrics(run: TrackedRun | None, tracking: DictConfig) -> Iterator[None]:
    """Sample CPU, memory, disk (and GPU) into ``run`` meanwhile, every 10 s."""
    if run is None or run.run_id is None or not tracking.system_metrics:
        yield
        return
    try:
        import psutil  # noqa: F401  MLflow's sampler needs it; say so before the run, not in it
    except ImportError:
        raise ConfigError("tracking.system_metrics=true needs psutil: pip install psutil") from None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run.run_id, tracking_uri=tracking.uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
