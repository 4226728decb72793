"""``mia-reattack``: run the current attack suite on a finished run's stored models.

    mia-reattack RUN_ID                      # one configuration run
    mia-reattack SWEEP_PARENT_ID             # every finished configuration run of a sweep
    mia-reattack RUN_ID --tracking-uri sqlite:///results/mlflow.db --store results/models

Each source configuration run is rebuilt from its resolved ``config.yaml`` artifact with the
attack suite of this checkout (``conf/attacks/suite.yaml``), its models are loaded from the
model store by the key its ``models_key`` tag names, and the result is recorded as a new
configuration run tagged ``reattack_of=<source run id>``. Nothing is trained: a run whose models
are not in the store is refused in one line (exit status 2) before anything is recorded. With
the suite unchanged, the new run's metrics are the source run's exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from benchmark.cli.job import RunOutcome, run
from benchmark.config.compose import compose_config
from benchmark.data.pool import Pool
from benchmark.errors import ConfigError
from benchmark.experiment.plan import Plan, prepare
from benchmark.protocol.membership import Membership
from benchmark.store.ensemble_store import EnsembleStore
from benchmark.tracking.params import leaves
from benchmark.tracking.record import Link
from benchmark.training.recipe import Recipe
from benchmark.training.trained import Models

#: The tag linking a re-attack's run to the run whose models it attacked.
SOURCE_TAG = "reattack_of"
#: MLflow's switch for its artifact download progress bar.
BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def never_train(recipe: Recipe, pool: Pool, membership: Membership, progress: bool) -> Models:
    """The re-attack's trainer: it loads stored models only, and refuses to train."""
    raise ConfigError("mia-reattack never trains, and the models are not in the model store")


def source_runs(client: MlflowClient, run_id: str) -> list[Run]:
    """The finished configuration runs ``run_id`` names: itself, or a sweep parent's children."""
    try:
        run_ = client.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(
            f"no MLflow run {run_id} in {client.tracking_uri}: pass a configuration run's or a "
            "sweep's id, and --tracking-uri if the run is in another store"
        ) from exc
    tags = run_.data.tags
    if "sweep_id" in tags:
        children = client.search_runs(
            [run_.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{run_id}' and "
            "attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"],
        )
        found = [c for c in children if "config_hash" in c.data.tags]
        if not found:
            raise ConfigError(f"sweep {run_id} has no finished configuration run to re-attack")
        return found
    if "config_hash" not in tags:
        raise ConfigError(
            f"run {run_id} is not a configuration run (a target's child run?): pass the id of "
            "its configuration run or of its sweep"
        )
    if run_.info.status != "FINISHED":
        raise ConfigError(f"run {run_id} is {run_.info.status}: only finished runs are re-attacked")
    return [run_]


def stored_key(source: Run) -> str:
    """The model store key of ``source``'s models; refuse a run whose models were not stored."""
    tags = source.data.tags
    if "models_key" in tags and "models_not_stored" not in tags:
        return tags["models_key"]
    reason = tags.get("models_not_stored", "it was recorded before the model store existed")
    raise ConfigError(
        f"run {source.info.run_id}'s models were not stored ({reason}): nothing to re-attack; "
        "rerun its configuration with training.cache=true first"
    )


def rebuild(source: dict[str, Any], current: DictConfig, store: str | None) -> DictConfig:
    """``current`` (this checkout's attack suite and tracking settings) with every other section
    of the source's resolved configuration; the models come from the store, unsharded."""
    for section, value in source.items():
        if section in ("attacks", "tracking"):
            continue
        if section == "defense" or not isinstance(value, dict) or not value:
            OmegaConf.update(current, section, value, merge=False, force_add=True)
            continue
        for key, leaf in leaves(value).items():
            OmegaConf.update(current, f"{section}.{key}", leaf, merge=False, force_add=True)
    current.training.cache, current.training.shard = True, None
    if store is not None:
        current.training.store = store
    return current


@contextlib.contextmanager
def no_download_bars() -> Iterator[None]:
    """MLflow's artifact download bar off meanwhile: a refusal stays one line on stderr."""
    previous = os.environ.get(BAR)
    os.environ[BAR] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(BAR, None)
        else:
            os.environ[BAR] = previous


def source_config(
    client: MlflowClient, source: Run, overrides: list[str], store: str | None
) -> DictConfig:
    with tempfile.TemporaryDirectory() as folder, no_download_bars():
        try:
            path = client.download_artifacts(source.info.run_id, "config.yaml", folder)
        except (MlflowException, OSError) as exc:
            raise ConfigError(
                f"run {source.info.run_id} has no readable config.yaml artifact: {exc}"
            ) from exc
        resolved = OmegaConf.to_container(OmegaConf.load(path))
    return rebuild(resolved, compose_config(overrides), store)  # type: ignore[arg-type]


def check_stored(plan: Plan, key: str, run_id: str) -> None:
    """Refuse, before anything is recorded, models the store does not hold."""
    assert plan.store is not None
    plan.store = EnsembleStore(plan.store.root, trainer=never_train)
    located = plan.store.locate(plan.recipe, plan.pool, plan.membership)
    if located != key:
        raise ConfigError(
            f"run {run_id}'s models (model store entry {key}) are not in {plan.store.root}"
            + (f" (this checkout trains them as entry {located})" if located else "")
            + ": pass --store with the folder that holds them, or rerun the configuration"
        )
    shadow = plan.shadow_recipe
    naive = shadow is not None and shadow != plan.recipe
    if naive and plan.store.locate(shadow, plan.pool, plan.membership) is None:
        raise ConfigError(
            f"run {run_id}'s undefended shadow models are not in {plan.store.root}: "
            "rerun the configuration to store them"
        )


def reattack(
    client: MlflowClient, source: Run, overrides: list[str], store: str | None, progress: bool
) -> RunOutcome:
    """Re-attack one finished configuration run; its new run is tagged with the source's id."""
    key = stored_key(source)
    cfg = source_config(client, source, overrides, store)
    plan = prepare(cfg, progress)
    check_stored(plan, key, source.info.run_id)
    params = {k: v for k, v in source.data.params.items() if k == "defense_option"}
    link = Link(tags={SOURCE_TAG: source.info.run_id}, params=params)
    return run(cfg, progress, link=link, plan=plan)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mia-reattack",
        description="Run the current attack suite on a finished run's stored models.",
    )
    parser.add_argument("run_id", help="a finished configuration run's id, or a sweep parent's")
    parser.add_argument("--tracking-uri", help="the MLflow store (default: as mia-bench)")
    parser.add_argument("--experiment", help="the new runs' experiment (default: as mia-bench)")
    parser.add_argument("--store", help="the model store folder (default: the source's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``mia-reattack`` console script; exit status 0, 1 (a run failed) or 2 (refused)."""
    args = parse(argv)
    overrides = [f"tracking.uri={args.tracking_uri}"] if args.tracking_uri else []
    overrides += [f"tracking.experiment={args.experiment}"] if args.experiment else []
    failed = 0
    try:
        uri = compose_config(overrides).tracking.uri
        client = MlflowClient(tracking_uri=uri)
        sources = source_runs(client, args.run_id)
        keys = [stored_key(source) for source in sources]  # refuse before re-attacking any
        for source, key in zip(sources, keys, strict=True):
            outcome = reattack(client, source, overrides, args.store, not args.quiet)
            print(outcome.summary)
            print(f"re-attacked run {source.info.run_id} (models {key}): run {outcome.run_id}")
            failed += outcome.failure is not None
    except ConfigError as exc:
        print(f"mia-reattack: error: {exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
