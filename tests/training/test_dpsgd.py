"""DP-SGD: bad budgets are refused, the accountant gives the requested epsilon, and the ensemble's
private step clips and noises exactly as Opacus does for each model on its own."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from opacus import GradSampleModule, PrivacyEngine
from opacus.optimizers import DPOptimizer
from torch.func import functional_call, grad, vmap

from benchmark.cli.job import run
from benchmark.errors import ConfigError
from benchmark.experiment.plan import prepare
from benchmark.models.base import build_model
from benchmark.progress import reporting_epochs
from benchmark.training.accounting import (
    DPParams,
    make_accountant,
    noise_multiplier,
    poisson_schedule,
)
from benchmark.training.engines import train
from benchmark.training.private_ensemble import PrivateEnsemble, poisson_batch
from benchmark.training.stacking import stack
from tests.conftest import FAST

#: FAST with DP-SGD; batches of 16 make the accountant's search for sigma quick (q = 1/5).
DPSGD = [*FAST, "defense=dpsgd", "training.batch_size=16"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("defense.dpsgd.target_epsilon=0", "target_epsilon must be > 0"),
        ("defense.dpsgd.target_epsilon=-1", "target_epsilon must be > 0"),
        ("defense.dpsgd.delta=0.05", "must be in \\(0, 1/N\\) where N=80"),
        ("defense.dpsgd.delta=0", "must be in \\(0, 1/N\\)"),
        ("defense.dpsgd.max_grad_norm=0", "max_grad_norm must be > 0"),
        ("defense.dpsgd.accountant=gdp", "accountant must be one of"),
        ("defense.dpsgd.target_epsilon=abc", "defense.dpsgd"),
    ],
)
def test_bad_dp_parameters_are_refused_in_one_line(make_config, override, message):
    with pytest.raises(ConfigError, match=message) as error:
        prepare(make_config([*DPSGD, override]), False)
    assert "\n" not in str(error.value)


def test_an_unreachable_epsilon_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="cannot be reached") as error:
        noise_multiplier(DPParams(target_epsilon=0.1), poisson_schedule(80, 64, 3))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("n_train", "batch_size", "epochs"),
    # The default digits schedule, and DPSGD's (sigma is cached for the tests below).
    [(718, 64, 30), (80, 16, 3)],
)
def test_the_accountant_spends_the_requested_epsilon_within_5_percent(n_train, batch_size, epochs):
    dp = DPParams(target_epsilon=8.0)
    schedule = poisson_schedule(n_train, batch_size, epochs)
    sigma = noise_multiplier(dp, schedule)
    spent = make_accountant(dp)
    spent.history = [(sigma, schedule.sample_rate, schedule.steps)]
    assert 0.95 * 8.0 <= spent.get_epsilon(dp.delta) <= 8.0 * 1.0001


def test_the_prv_accountant_is_available_and_tighter_than_rdp():
    history = [(1.0, 0.2, 15)]
    rdp, prv = make_accountant(DPParams()), make_accountant(DPParams(accountant="prv"))
    rdp.history, prv.history = list(history), list(history)
    assert 0 < prv.get_epsilon(1e-5) < rdp.get_epsilon(1e-5)


def test_the_schedule_and_noise_are_those_of_opacus_privacy_engine():
    n, batch_size, epochs = 718, 64, 30  # the default digits schedule (sigma cached above)
    dp = DPParams()
    model = build_model("logreg", (5,), 3)
    data = torch.utils.data.TensorDataset(torch.randn(n, 5), torch.randint(0, 3, (n,)))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    _, optimizer, loader = PrivacyEngine(accountant="rdp").make_private_with_epsilon(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        data_loader=loader,
        target_epsilon=dp.target_epsilon,
        target_delta=dp.delta,
        epochs=epochs,
        max_grad_norm=dp.max_grad_norm,
    )
    schedule = poisson_schedule(n, batch_size, epochs)
    assert schedule.sample_rate == loader.sample_rate
    assert schedule.steps_per_epoch == len(loader)
    assert schedule.expected_batch_size == optimizer.expected_batch_size
    assert noise_multiplier(dp, schedule) == optimizer.noise_multiplier


def test_poisson_batches_hold_each_models_own_members_with_the_right_rate():
    members = torch.stack([torch.arange(0, 200, 2), torch.arange(1, 200, 2)])  # [K=2, n=100]
    generator = torch.Generator().manual_seed(0)
    sizes = []
    for _ in range(200):
        index, mask = poisson_batch(members, 0.1, generator)  # [K, B]
        for k in range(2):
            drawn = index[k, mask[k]]
            assert torch.all(drawn % 2 == k)  # model k's own members only
            assert len(set(drawn.tolist())) == len(drawn)  # without replacement
            sizes.append(len(drawn))
        assert mask.any(dim=0).all()  # no batch position of padding only
    assert abs(sum(sizes) / len(sizes) - 10.0) < 0.5  # E[size] = q * n = 10


def _stacked_problem(model: str, seed: int = 0):
    torch.manual_seed(seed)
    shape = (12,) if model == "mlp" else (1, 6, 6)
    modules = [build_model(model, shape, 4, hidden=[16], channels=[4, 8]) for _ in range(3)]
    x = torch.randn(7, 3, *shape) * 3
    y = torch.randint(0, 4, (7, 3))
    mask = torch.rand(7, 3) < 0.7
    mask[0] = True  # every model has at least one example
    mask[-1, 1] = False  # and some batch is padded
    return modules, x, y, mask


def _per_sample_norms(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example gradient norms of one model, computed independently with torch.func."""
    params = {name: p.detach() for name, p in module.named_parameters()}

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(module, p, (xi[None],)), yi[None])

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_the_private_step_clips_each_model_exactly_as_opacus(model):
    modules, x, y, mask = _stacked_problem(model)
    references = [copy.deepcopy(m) for m in modules]
    clip, expected_batch_size = 0.05, 5
    ensemble = stack(modules)
    private = PrivateEnsemble(
        ensemble,
        torch.optim.SGD(ensemble.parameters(), lr=1.0),
        DPParams(max_grad_norm=clip),
        sigma=0.0,
        expected_batch_size=expected_batch_size,
    )
    private.step(x, y, mask)
    norms = private.module.per_sample_gradient_norms  # [B, K], by the ghost norm samplers
    for k, module in enumerate(modules):
        rows = mask[:, k]
        independent = _per_sample_norms(module, x[rows, k], y[rows, k])
        assert torch.allclose(norms[rows, k], independent, rtol=1e-4, atol=1e-6)
        assert torch.all(norms[~rows, k] == 0)  # padding contributes nothing
    assert (norms[mask] > clip).all()  # so every example is clipped below
    clipped = norms * private.module.get_clipping_coef()
    assert (clipped <= clip * (1 + 1e-5)).all()
    private.close()
    ensemble.unstack_into(modules)
    for k, reference in enumerate(references):
        # Opacus's own per-sample gradients and clipping, one model at a time.
        gsm = GradSampleModule(reference)
        optimizer = DPOptimizer(
            torch.optim.SGD(gsm.parameters(), lr=1.0),
            noise_multiplier=0.0,
            max_grad_norm=clip,
            expected_batch_size=expected_batch_size,
        )
        rows = mask[:, k]
        F.cross_entropy(gsm(x[rows, k]), y[rows, k]).backward()
        optimizer.step()
        for p, q in zip(modules[k].parameters(), reference.parameters(), strict=True):
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-6)


def test_the_private_step_adds_noise_of_std_sigma_c_independently_per_model():
    modules, x, y, mask = _stacked_problem("mlp")
    sigma, clip, expected_batch_size = 2.0, 0.5, 8
    ensemble = stack(modules)
    before = [p.detach().clone() for p in ensemble.parameters()]
    private = PrivateEnsemble(
        ensemble,
        torch.optim.SGD(ensemble.parameters(), lr=1.0),
        DPParams(max_grad_norm=clip),
        sigma=sigma,
        expected_batch_size=expected_batch_size,
        generator=torch.Generator().manual_seed(0),
    )
    private.step(x, y, torch.zeros_like(mask))  # no examples: the update is the noise alone
    noise = [
        (b - p.detach()) * expected_batch_size
        for b, p in zip(before, ensemble.parameters(), strict=True)
    ]
    per_model = torch.stack([torch.cat([n[k].flatten() for n in noise]) for k in range(3)])
    assert per_model.shape[1] > 250
    for k in range(3):
        assert abs(per_model[k].std().item() / (sigma * clip) - 1) < 0.15
    everything = per_model.flatten()
    assert abs(everything.std().item() / (sigma * clip) - 1) < 0.08
    assert abs(everything.mean().item()) < 4 * sigma * clip / everything.numel() ** 0.5
    correlation = torch.corrcoef(per_model)
    assert (correlation - torch.eye(3)).abs().max() < 0.2


def test_both_engines_report_the_epsilon_of_the_same_accountant(make_config):
    plan = prepare(make_config([*DPSGD, "protocol.n_models=2"]), False)
    reference = train(plan.recipe.replace(engine="sequential"), plan.pool, plan.membership, False)
    curve = []
    with reporting_epochs(lambda epoch, means, per_model: curve.append((epoch, means, per_model))):
        ensemble = train(plan.recipe, plan.pool, plan.membership, False)
    assert len(ensemble.epsilons) == plan.membership.n_models
    assert ensemble.epsilons == pytest.approx(reference.epsilons, rel=1e-9)
    # DP-SGD's training curve: per epoch, each model's loss and accuracy and their mean.
    assert [epoch for epoch, _, _ in curve] == list(range(1, plan.recipe.epochs + 1))
    for _, means, per_model in curve:
        for key in ("train/loss", "train/acc"):
            assert len(per_model[key]) == 2 and means[key] == pytest.approx(sum(per_model[key]) / 2)
        assert all(0.0 <= a <= 1.0 for a in per_model["train/acc"])


def test_dpsgd_runs_end_to_end_and_logs_epsilon(make_config):
    outcome = run(make_config(DPSGD), False)
    assert outcome.failure is None
    assert outcome.result.plan.recipe.dp == DPParams()  # conf/defense/dpsgd.yaml's defaults
    epsilon = outcome.result.summary()["dp/epsilon"]
    assert 0.95 * 8 <= epsilon.mean <= 8.0
    assert "privacy/lira_online/auc" in outcome.result.summary()


def test_book_keeping_gives_the_clipped_gradients_of_ghost_clippings_second_pass():
    modules, x, y, mask = _stacked_problem("mlp")
    updates = []
    for bookkeeping in (True, False):
        ensemble = stack(copy.deepcopy(modules))
        before = [p.detach().clone() for p in ensemble.parameters()]
        private = PrivateEnsemble(
            ensemble,
            torch.optim.SGD(ensemble.parameters(), lr=1.0),
            DPParams(max_grad_norm=0.05),
            sigma=0.0,
            expected_batch_size=5,
        )
        assert private._bookkeeping  # an all-linear stack takes the one-pass path
        private._bookkeeping = bookkeeping
        private.step(x, y, mask)
        private.close()
        updates.append([b - p.detach() for b, p in zip(before, ensemble.parameters(), strict=True)])
    for one_pass, two_pass in zip(*updates, strict=True):
        assert one_pass.abs().max() > 0
        assert torch.allclose(one_pass, two_pass, rtol=1e-5, atol=1e-8)
