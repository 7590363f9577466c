"""The study's eps/linear formulation pinned to diffusers on one tiny study network: its training loss equals
DDPMScheduler.add_noise + eps-MSE at uniform discrete timesteps (the LDM loss: no extra weighting), its sampler
equals DDIMScheduler's steps with classifier-free guidance on eps, and its eps -> x0 / velocity conversion is
exact (an oracle eps gives zero validation error and lands on the data point)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from genlab.core.flow import formulation
from genlab.core.flow.formulation import velocity_mse_at_levels
from genlab.systems.t2i.study import config as study_config
from genlab.systems.t2i.study.model import NULL_CLASS, StudyNet
from genlab.systems.t2i.study.run import generate

schedulers = pytest.importorskip("diffusers.schedulers")
SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)


def _net(seed: int = 0) -> StudyNet:
    cfg = study_config.NetConfig(depth=1, hidden_size=64, num_heads=1, patch_size=4, cond_dim=16, image_size=8)
    torch.manual_seed(seed)
    net = StudyNet(cfg)
    with torch.no_grad():  # adaLN-Zero starts at a zero output: make it depend on x, t and the label
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


@torch.no_grad()
def test_training_loss_equals_ddpm_add_noise_eps_mse():
    form, net = formulation.eps_linear(), _net()
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(8, 1, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(8, 1, 8, 8, generator=g)
    labels = torch.randint(0, NULL_CLASS + 1, (8,), generator=g)
    u = torch.rand(8, generator=g, dtype=torch.float64)
    u[:2] = torch.tensor([0.0, 0.99999])  # both ends of the schedule
    t = form.density.icdf(u).float()  # what the study's loss_fn draws
    n = torch.floor(u * 1000).long()  # diffusers: timesteps = randint(0, 1000)
    assert torch.equal(form.net_time(t), n.float())  # the network sees diffusers' integer timestep
    ours = form.loss(net, x0, t=t, eps=eps, labels=labels).loss
    noisy = schedulers.DDPMScheduler(**SCHEDULE).add_noise(x0, eps, n)
    theirs = F.mse_loss(net(noisy, n.float(), labels), eps)
    assert float(theirs) > 0.1  # not a trivial network
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("steps,scale", [(5, 3.0), (25, 1.0)])
@torch.no_grad()
def test_study_sampler_equals_ddim_scheduler_with_cfg(steps, scale):
    form, net = formulation.eps_linear(), _net()
    cfg = replace(study_config.study_tiny(), net=net.cfg)
    g = torch.Generator().manual_seed(2)
    labels = torch.arange(6) % 10
    noise = torch.randn(6, 1, 8, 8, generator=g)
    ours = generate(cfg, form, net, steps, scale, labels, noise)
    # diffusers: DDIM (eta 0) on the "trailing" grid 999, 999 - 1000/steps, ..., to alphabar = 1 at the end
    ddim = schedulers.DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    ddim.set_timesteps(steps)
    x = noise * float(form.path.b(torch.tensor(1.0)))  # the study starts at b_1 eps (b_1 = 0.9977), see its README
    null = torch.full_like(labels, NULL_CLASS)
    for n in ddim.timesteps:
        tn = torch.full((6,), float(n))
        e = net(x, tn, labels) if scale == 1.0 else net(x, tn, null) + scale * (net(x, tn, labels) - net(x, tn, null))
        x = ddim.step(e, n, x, eta=0.0).prev_sample
    assert float(x.std()) > 0.1
    torch.testing.assert_close(ours, x, atol=1e-5, rtol=1e-5)  # |x| reaches ~30: x0 = (z - b eps) / a, b / a <= 14.6


@torch.no_grad()
def test_eps_to_x0_and_velocity_conversions_are_exact():
    """An oracle eps for one data point: the validation loss (rf velocity error via eps_hat - x0_hat) is zero and
    DDIM lands on the point from any start, at any number of steps."""
    form = formulation.eps_linear()
    g = torch.Generator().manual_seed(3)
    x_star = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1

    def oracle(z, net_time, **_):
        t = form.path.timestep_to_t(net_time.double())
        a, b = form.path.a(t).view(-1, 1, 1, 1), form.path.b(t).view(-1, 1, 1, 1)
        return (z.double() - a * x_star) / b

    eps = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    err = velocity_mse_at_levels(form, oracle, x_star.expand(4, -1, -1, -1), eps)
    assert float(err.max()) < 1e-20
    from genlab.core.flow import samplers

    for steps in (3, 20):
        out = samplers.ddim(form.denoiser(oracle), eps, form.default_grid(steps)).x
        torch.testing.assert_close(out, x_star.expand_as(out), atol=1e-10, rtol=0)
