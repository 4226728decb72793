"""The tracking backend, checked before anything trains: driver, server, experiment name.

A refused backend is one :class:`~benchmark.errors.ConfigError` line; a server that dies later
is retried a bounded number of times (MLflow's own HTTP retry settings, defaulted here so that a
dead server costs seconds, not minutes) before the run goes to the spool.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import urllib.error
import urllib.request

from mlflow.utils.validation import MAX_EXPERIMENT_NAME_LENGTH

from benchmark.errors import ConfigError

log = logging.getLogger(__name__)

#: MLflow's HTTP retry settings when the user set none: 2 retries, 1 s backoff, 15 s per request.
HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
#: The Python driver each database scheme needs (SQLAlchemy's default dialect drivers).
DRIVERS = {
    "postgresql": "psycopg2",
    "mysql": "pymysql",
    "mssql": "pyodbc",
}


def bound_retries() -> None:
    """Default MLflow's HTTP retries to a few seconds; what the user exported wins."""
    for name, value in HTTP_RETRIES.items():
        os.environ.setdefault(name, value)


def _check_driver(uri: str) -> None:
    scheme = uri.split(":", 1)[0]
    dialect, _, driver = scheme.partition("+")
    module = driver or DRIVERS.get(dialect)
    if module and importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"tracking.uri={uri.split('@')[-1]} needs the Python package '{module}', which is "
            f"not installed; pip install {module}, or set tracking.uri=sqlite:///results/mlflow.db"
        )


def _check_server(uri: str) -> None:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as answer:
            ok = answer.status == 200
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(
            f"cannot reach the MLflow server at tracking.uri={uri} ({exc}): start it "
            "(mlflow server --host HOST --port PORT) or set tracking.uri to a running server"
        ) from None
    if not ok:
        raise ConfigError(f"the MLflow server at tracking.uri={uri} is not healthy; check it")


def check_backend(uri: str, experiment: str) -> None:
    """Refuse a backend that cannot work, before anything trains."""
    if not experiment or len(experiment) > MAX_EXPERIMENT_NAME_LENGTH:
        raise ConfigError(
            f"tracking.experiment must have 1 to {MAX_EXPERIMENT_NAME_LENGTH} characters, "
            f"got {len(experiment)}; set a shorter tracking.experiment"
        )
    if uri.startswith(("http://", "https://")):
        bound_retries()
        _check_server(uri)
    elif "://" in uri and not uri.startswith(("sqlite:", "file:", "databricks")):
        _check_driver(uri)
