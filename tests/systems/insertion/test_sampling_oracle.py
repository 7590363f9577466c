"""The sampler, schedule, guidance and condition plumbing, checked with an oracle network that knows the
answer: it returns the exact eps for x0 = (what the conditions it received say the clean latent is).
If the timestep convention, the DDIM update, the masked scene / mask / reference given to the network
or the guidance combination were wrong, the sample would not be the analytic result below."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from genlab.core.flow import formulation as flow_formulation
from genlab.core.flow.prediction import from_x0_eps
from genlab.systems.insertion import config, pairs
from genlab.systems.insertion.model import SpaceToDepth, mask_to_latent
from genlab.systems.insertion.pipeline import InsertionPipeline


class Oracle(nn.Module):
    """The exact eps (or v) for x0 = scene outside the mask + (target inside it if a person is given, else 0)."""

    def __init__(self, target: torch.Tensor, ref: torch.Tensor, prediction: str):
        super().__init__()
        self.target, self.ref, self.prediction = target, ref, prediction
        self.path = flow_formulation.eps_linear().path
        self.seen: list[dict] = []

    def forward(self, z_t, timestep, scene, mask, reference=None, context=None):
        k = len(z_t) // len(self.target)  # conditions batched along N by the guidance
        reference = context if reference is None else reference  # _Wrap "encodes" a reference as itself
        self.seen.append({"scene": scene, "mask": mask, "reference": reference})
        has_person = (reference.flatten(1).abs().amax(1) > 0).to(z_t.dtype).view(-1, 1, 1, 1)
        torch.testing.assert_close(reference[has_person.flatten() > 0], self.ref.repeat(k, 1, 1, 1)[has_person.flatten() > 0])
        x0 = scene * (1 - mask) + mask * self.target.repeat(k, 1, 1, 1) * has_person
        t = self.path.timestep_to_t(timestep.double() + 0.0)  # the network's time input is n = T t - 1
        a, b = self.path.a(t).view(-1, 1, 1, 1), self.path.b(t).view(-1, 1, 1, 1)
        eps = (z_t.double() - a * x0.double()) / b
        return from_x0_eps(self.prediction, x0.double(), eps, t, self.path).to(z_t.dtype)


def _setup(prediction, n=3):
    cfg = config.tiny()
    cfg = replace(cfg, model=replace(cfg.model, prediction=prediction))
    batch = pairs.collate(pairs.eval_pairs(n, pairs.PairConfig(size=cfg.size, ref_size=cfg.ref_size)))
    ae = SpaceToDepth(2)
    target = ae.encode(batch["target"])
    oracle = Oracle(target, batch["reference"], prediction)
    pipe = InsertionPipeline(_Wrap(oracle, cfg.model), ae, cfg.ref_size)
    return pipe, oracle, batch, ae, cfg


class _Wrap(nn.Module):
    def __init__(self, oracle, config):
        super().__init__()
        self.oracle, self.config = oracle, config

    def forward(self, *a, **k):
        return self.oracle(*a, **k)

    def encode_reference(self, reference):
        return reference


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_oracle_at_scale_one_reproduces_the_target_and_sees_the_right_conditions(prediction):
    pipe, oracle, batch, ae, cfg = _setup(prediction)
    s = replace(cfg.sample, steps=10, scale_scene=1.0, scale_person=1.0, composite=False)
    out = pipe.sample(batch["scene"], batch["mask"], batch["reference"], settings=s,
                      generator=torch.Generator().manual_seed(0))
    m_lat = mask_to_latent(batch["mask"], out.latents.shape[-2:], cfg.model.mask_resize)
    z_scene = ae.encode(batch["scene"] * (1 - batch["mask"]))
    want = z_scene * (1 - m_lat) + m_lat * oracle.target
    torch.testing.assert_close(out.latents, want, atol=1e-4, rtol=1e-4)  # from pure noise, in 10 DDIM steps
    # scene outside the (max-pooled) mask is the target itself: the sample is the target latent there too
    keep = (m_lat == 0).expand_as(want)
    torch.testing.assert_close(out.latents[keep], oracle.target[keep], atol=1e-4, rtol=1e-4)
    assert len(oracle.seen) == 10  # scale 1: only the full condition is evaluated


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_two_scale_guidance_is_the_analytic_combination(prediction):
    pipe, oracle, batch, ae, cfg = _setup(prediction)
    m_lat = mask_to_latent(batch["mask"], oracle.target.shape[-2:], cfg.model.mask_resize)
    z_scene = ae.encode(batch["scene"] * (1 - batch["mask"]))
    out_s = z_scene * (1 - m_lat)  # x0(S, 0): scene, nothing inside the mask
    x_sp = out_s + m_lat * oracle.target  # x0(S, P)
    x_00 = torch.zeros_like(x_sp)  # x0(0, 0): grey scene latent (0 in pixel space), all masked, no person
    for s1, s2 in ((2.0, 2.0), (2.0, 1.0), (1.0, 3.0)):
        s = replace(cfg.sample, steps=8, scale_scene=s1, scale_person=s2, composite=False)
        out = pipe.sample(batch["scene"], batch["mask"], batch["reference"], settings=s,
                          generator=torch.Generator().manual_seed(0))
        want = x_00 + s1 * (out_s - x_00) + s2 * (x_sp - out_s)
        torch.testing.assert_close(out.latents, want, atol=1e-4, rtol=1e-4)
        # equal scales need only (0,0) and (S,P): eps(S,0) cancels out of the sum
        assert oracle.seen[-1]["scene"].shape[0] == (2 if s1 == s2 else 3) * len(batch["scene"])
    # the three conditions reach the network in one batch: (0,0) | (S,0) | (S,P)
    seen = oracle.seen[-1]
    n = len(batch["scene"])
    assert seen["scene"].shape[0] == 3 * n
    assert (seen["mask"][:n] == 1).all() and torch.equal(seen["mask"][n:2 * n], m_lat)
    assert (seen["reference"][:2 * n] == 0).all() and torch.equal(seen["reference"][2 * n:], batch["reference"])
    torch.testing.assert_close(seen["scene"][n:2 * n], z_scene)
