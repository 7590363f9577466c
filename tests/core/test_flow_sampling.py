"""Densities, grids, samplers (exact integration, convergence order, diffusers DDIM parity) and guidance."""

import math

import pytest
import torch

from genlab.core.flow import formulation, grids, guidance, samplers
from genlab.core.flow.densities import CosMap, DiscreteUniform, LogitNormal, Mode, Uniform
from genlab.core.flow.paths import CosinePath, EDMPath, LDMLinearPath, RectifiedFlowPath
from genlab.core.flow.prediction import Prediction
from genlab.errors import GenlabError

DENSITIES = [Uniform(), LogitNormal(0.0, 1.0), LogitNormal(0.5, 0.6), LogitNormal(-0.5, 1.0), Mode(1.29),
             Mode(1.75), Mode(-0.5), CosMap()]


@pytest.mark.parametrize("dens", DENSITIES, ids=repr)
def test_density_integrates_to_one_and_matches_histogram(dens):
    # integral of pdf on (0, 1): midpoint rule on a fine grid
    n = 200_000
    mid = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    assert float(dens.pdf(mid).mean()) == pytest.approx(1.0, abs=2e-3)
    # histogram of samples vs bin-averaged pdf
    g = torch.Generator().manual_seed(0)
    t = dens.sample(200_000, generator=g, dtype=torch.float64)
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    bins = 20
    hist = torch.histc(t, bins=bins, min=0, max=1) / len(t) * bins
    per_bin = 20_000  # fine enough for mode(1.75), whose density peaks sharply at t = 1/2
    fine = (torch.arange(bins * per_bin, dtype=torch.float64) + 0.5) / (bins * per_bin)
    expected = dens.pdf(fine).reshape(bins, per_bin).mean(1)
    torch.testing.assert_close(hist, expected, atol=0.03 + 0.03 * float(expected.max()), rtol=0)
    # stratified sampling draws the same distribution, one u per stratum
    ts = dens.sample(1000, generator=g, stratified=True, dtype=torch.float64)
    u = torch.sort(ts).values
    torch.testing.assert_close(u, dens.icdf((torch.arange(1000, dtype=torch.float64) + 0.5) / 1000), atol=0.02, rtol=0)


def test_density_special_cases():
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    torch.testing.assert_close(Mode(0.0).pdf(t), torch.ones_like(t))
    # CosMap pdf is the derivative of the inverse of its sampling map
    cm, h = CosMap(), 1e-6
    u = 2 / math.pi * torch.atan(1 / (1 - t) - 1)  # inverse of t = 1 - 1/(tan(pi u / 2) + 1)
    torch.testing.assert_close(cm.icdf(u), t)
    du = (2 / math.pi * torch.atan(1 / (1 - t - h) - 1) - 2 / math.pi * torch.atan(1 / (1 - t + h) - 1)) / (2 * h)
    torch.testing.assert_close(cm.pdf(t), du, rtol=1e-5, atol=1e-6)
    # mode and lognorm(0, s) are symmetric around 1/2; m > 0 shifts mass to noise
    torch.testing.assert_close(Mode(1.29).pdf(t), Mode(1.29).pdf(1 - t))
    assert float(LogitNormal(1.0, 0.6).sample(10000, generator=torch.Generator().manual_seed(0)).mean()) > 0.65
    d = DiscreteUniform(1000).sample(5000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(d * 1000, torch.round(d * 1000))
    assert float(d.min()) >= 1e-3 and float(d.max()) <= 1.0
    with pytest.raises(GenlabError):
        Mode(2.0)


# ---- grids ---------------------------------------------------------------------------------------
def test_uniform_and_shifted_grid_match_diffusers_flow_match_euler():
    schedulers = pytest.importorskip("diffusers.schedulers")
    for steps, alpha in [(28, 3.0), (10, 1.0)]:
        ref = schedulers.FlowMatchEulerDiscreteScheduler(shift=alpha)
        ref.set_timesteps(steps)
        # diffusers linspaces between its *shifted* end points, then shifts again: t_min = shift(1/1000)
        ours = grids.shifted(steps, alpha, t_max=1.0, t_min=float(grids.shift(1.0 / 1000, alpha)))
        torch.testing.assert_close(ours.float(), ref.sigmas.float(), atol=1e-6, rtol=0)
        named = grids.flow_match_euler(steps, alpha)
        torch.testing.assert_close(named.float(), ref.sigmas.float(), atol=1e-6, rtol=0)
        assert float(named[-2]) > 0.0 and float(named[-1]) == 0.0  # the last step goes from shift(...) to 0
    g = grids.uniform(4)
    torch.testing.assert_close(g, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("spacing,steps,offset", [("leading", 50, 1), ("leading", 10, 0), ("trailing", 25, 0), ("linspace", 7, 0)])
def test_discrete_grid_matches_diffusers_ddim_timesteps(spacing, steps, offset):
    schedulers = pytest.importorskip("diffusers.schedulers")
    ref = schedulers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                   timestep_spacing=spacing, steps_offset=offset)
    ref.set_timesteps(steps)
    path = LDMLinearPath()
    ours = grids.discrete(steps, path, spacing, steps_offset=offset)
    torch.testing.assert_close(path.t_to_timestep(ours[:-1]), ref.timesteps.double())
    assert float(ours[-1]) == 0.0


def test_karras_grid():
    path = EDMPath(-1.2, 1.2)
    ts = grids.karras(10, path, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    sig = path.sigma(ts[:-1])
    assert float(sig[0]) == pytest.approx(80.0, rel=1e-9) and float(sig[-1]) == pytest.approx(0.002, rel=1e-9)
    i = torch.arange(10, dtype=torch.float64)
    ref = (80 ** (1 / 7) + i / 9 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(sig, ref)
    assert float(ts[-1]) == 0.0 and bool((ts[1:] < ts[:-1]).all())


# ---- samplers ------------------------------------------------------------------------------------
def _point_mass_model(path, x_star):
    """Exact x0-prediction for data concentrated at x_star: trajectories are exactly straight on rf."""
    def model(z, t):
        return Prediction("x0", x_star.expand_as(z), z, t, path)
    return model


def test_exact_integration_of_a_linear_flow():
    path, g = RectifiedFlowPath(), torch.Generator().manual_seed(0)
    x_star = torch.randn(1, 3, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    model = _point_mass_model(path, x_star)
    for sampler in (samplers.euler, samplers.heun, samplers.ddim):
        for ts in (grids.uniform(1), grids.shifted(7, 3.0)):
            out = sampler(model, noise, ts, return_trajectory=True)
            torch.testing.assert_close(out.x, x_star.expand_as(noise), rtol=0, atol=1e-12)
            # every intermediate state lies on the straight line z_t = (1 - t) x* + t eps
            for t, z in zip(ts.tolist(), out.trajectory):
                torch.testing.assert_close(z, (1 - t) * x_star + t * noise, rtol=0, atol=1e-12)
    out = samplers.heun(model, noise, grids.uniform(5))
    assert out.nfe == 9  # 2 per step, 1 for the last step into t = 0


def _gaussian_model(path, mu, s):
    """Exact posterior mean E[x0 | z] for data x0 ~ N(mu, s^2) on any path."""
    def model(z, t):
        a = path.a(t.double())[:, None]
        b = path.b(t.double())[:, None]
        x0 = mu + a * s**2 / (a**2 * s**2 + b**2) * (z - a * mu)
        return Prediction("x0", x0, z, t, path)
    return model


def _gaussian_exact(path, mu, s, z_start, t_start, t_end):
    """The probability-flow ODE keeps (z - a mu)/std_t constant, std_t = sqrt(a^2 s^2 + b^2)."""
    t0, t1 = torch.tensor(t_start, dtype=torch.float64), torch.tensor(t_end, dtype=torch.float64)
    std = lambda t: torch.sqrt(path.a(t) ** 2 * s**2 + path.b(t) ** 2)
    return path.a(t1) * mu + std(t1) / std(t0) * (z_start - path.a(t0) * mu)


def _errors_at(path, model, z0, grid_fn, exact, runs):
    errs = {}
    for name, fn, kw in runs:
        errs[name] = [float((fn(model, z0, grid_fn(n), **kw).x - exact).abs().max()) for n in (16, 32)]
    return errs


RUNS = [("euler", samplers.euler, {}), ("heun", samplers.heun, {}), ("ddim", samplers.ddim, {}),
        ("heun_sigma", samplers.heun, {"space": "sigma"})]


@pytest.mark.parametrize("path", [RectifiedFlowPath(), CosinePath()], ids=repr)
def test_samplers_converge_on_gaussian_data_with_their_order(path):
    mu, s, t_start = 0.7, 0.3, 0.98
    z0 = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    exact = _gaussian_exact(path, mu, s, z0, t_start, 0.0)
    errs = _errors_at(path, _gaussian_model(path, mu, s), z0,
                      lambda n: torch.linspace(t_start, 0.0, n + 1, dtype=torch.float64), exact, RUNS)
    for name in ("euler", "ddim"):  # first order
        assert errs[name][1] < 0.05 and 1.6 < errs[name][0] / errs[name][1] < 2.4, errs
    for name in ("heun", "heun_sigma"):  # second order (the final Euler step into t = 0 costs a little)
        assert errs[name][1] < 0.01 and errs[name][0] / errs[name][1] > 3.5, errs


def test_edm_heun_on_karras_grid_converges():
    path, mu, s = EDMPath(-1.2, 1.2), 0.7, 0.3
    z0 = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    grid = lambda n: grids.karras(n, path, sigma_min=0.002, sigma_max=20.0)
    exact = _gaussian_exact(path, mu, s, z0, float(grid(4)[0]), 0.0)
    errs = _errors_at(path, _gaussian_model(path, mu, s), z0, grid, exact, RUNS[2:])
    assert errs["heun_sigma"][1] < errs["ddim"][1] < 0.06, errs
    assert errs["heun_sigma"][0] / errs["heun_sigma"][1] > 3.0, errs


def test_ddim_equals_euler_on_rectified_flow():
    form, g = formulation.rf(), torch.Generator().manual_seed(1)
    w = torch.randn(6, 6, generator=g)
    net = lambda x, tt: torch.tanh(x @ w) * (tt[:, None] / 1000)
    model, x = form.denoiser(net), torch.randn(4, 6, generator=g)
    ts = grids.shifted(9, 3.0)
    torch.testing.assert_close(samplers.ddim(model, x, ts).x, samplers.euler(model, x, ts).x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(samplers.euler(model, x, ts, space="sigma").x, samplers.ddim(model, x, ts).x)


@pytest.mark.parametrize("prediction,spacing,steps", [("epsilon", "leading", 10), ("v_prediction", "trailing", 20),
                                                      ("epsilon", "trailing", 50)])
def test_ddim_matches_diffusers_ddim_scheduler(prediction, spacing, steps):
    schedulers = pytest.importorskip("diffusers.schedulers")
    ref = schedulers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                   clip_sample=False, set_alpha_to_one=True, timestep_spacing=spacing,
                                   prediction_type=prediction)
    ref.set_timesteps(steps)
    g = torch.Generator().manual_seed(2)
    w = torch.randn(8, 8, generator=g) / 3

    def raw(x, timestep):  # any deterministic function of (x, timestep)
        return torch.sin(x @ w) + 0.001 * timestep.reshape(-1, 1)

    x = torch.randn(3, 8, generator=g)
    # diffusers
    xr = x.clone()
    for n in ref.timesteps:
        xr = ref.step(raw(xr, torch.full((3,), float(n))), n, xr, eta=0.0).prev_sample
    # ours
    form = formulation.eps_linear() if prediction == "epsilon" else formulation.v_linear()
    ours = samplers.ddim(form.denoiser(raw), x, grids.discrete(steps, form.path, spacing)).x
    torch.testing.assert_close(ours, xr, atol=1e-5, rtol=1e-5)
    # one step on its own, too
    n = int(ref.timesteps[0])
    one = ref.step(raw(x, torch.full((3,), float(n))), n, x).prev_sample
    ts = grids.discrete(steps, form.path, spacing)[:2]
    torch.testing.assert_close(samplers.ddim(form.denoiser(raw), x, ts).x, one, atol=1e-5, rtol=1e-5)


def test_sampler_input_errors():
    model = _point_mass_model(RectifiedFlowPath(), torch.zeros(1, 2))
    with pytest.raises(GenlabError):
        samplers.euler(model, torch.zeros(1, 2), [0.0, 1.0])
    with pytest.raises(GenlabError):
        grids.uniform(0)


# ---- guidance ------------------------------------------------------------------------------------
class _CountingNet:
    def __init__(self):
        self.calls, self.w = 0, torch.randn(4, 4, generator=torch.Generator().manual_seed(3))

    def __call__(self, x, t, scene, person):
        self.calls += 1
        return torch.tanh(x @ self.w) + scene + 2 * person + t[:, None] / 1000


def test_guidance_scale_one_is_conditional_and_two_scale_formula():
    form, net = formulation.eps_linear(), _CountingNet()
    model = form.denoiser(net)
    z, t = torch.randn(3, 4), torch.full((3,), 0.5)
    S, P, zero = torch.randn(3, 4), torch.randn(3, 4), torch.zeros(3, 4)
    c00, cs0, csp = dict(scene=zero, person=zero), dict(scene=S, person=zero), dict(scene=S, person=P)
    e = {k: model(z, t, **c).value for k, c in [("00", c00), ("s0", cs0), ("sp", csp)]}
    # CFG at scale 1 == conditional, with a single forward
    net.calls = 0
    torch.testing.assert_close(guidance.cfg(model, c00, csp, 1.0)(z, t).value, e["sp"])
    assert net.calls == 1
    # a tensor scale of ones takes the batched path and gives the same
    torch.testing.assert_close(guidance.cfg(model, c00, csp, torch.ones(1))(z, t).value, e["sp"], atol=1e-6, rtol=1e-6)
    # two-scale scene + person guidance in one batched forward
    s1, s2 = 2.5, 4.0
    net.calls = 0
    out = guidance.guided(model, [c00, cs0, csp], [s1, s2])(z, t)
    assert net.calls == 1 and out.value.shape == z.shape and out.kind == "eps"
    torch.testing.assert_close(out.value, e["00"] + s1 * (e["s0"] - e["00"]) + s2 * (e["sp"] - e["s0"]), atol=1e-5, rtol=1e-5)
    # guidance in eps space equals guidance in x0 space (affine conversions)
    x0s = {k: model(z, t, **c).x0 for k, c in [("00", c00), ("sp", csp)]}
    torch.testing.assert_close(guidance.cfg(model, c00, csp, 3.0)(z, t).x0, x0s["00"] + 3.0 * (x0s["sp"] - x0s["00"]), atol=1e-4, rtol=1e-4)


def test_per_frame_broadcast_scales():
    form = formulation.edm_v()
    frames = 5
    net = lambda x, t, c: x * 0.1 + c
    model = form.denoiser(net)
    z, t = torch.randn(2, 3, frames, 4, 4), torch.full((2,), 0.4)
    cu, cc = torch.zeros(2, 3, frames, 4, 4), torch.randn(2, 3, frames, 4, 4)
    scales = guidance.linear_frame_scales(frames, 1.0, 3.0, frame_dim=2, ndim=5)
    assert scales.shape == (1, 1, frames, 1, 1)
    out = guidance.cfg(model, {"c": cu}, {"c": cc}, scales)(z, t).value
    pu, pc = model(z, t, c=cu).value, model(z, t, c=cc).value
    for f, s in enumerate(torch.linspace(1.0, 3.0, frames)):
        torch.testing.assert_close(out[:, :, f], pu[:, :, f] + s * (pc[:, :, f] - pu[:, :, f]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, :, 0], pc[:, :, 0], atol=1e-5, rtol=1e-5)  # first frame scale 1


def test_guided_model_runs_in_a_sampler():
    form, net = formulation.rf_lognorm(), _CountingNet()
    z = torch.randn(2, 4)
    c0 = dict(scene=torch.zeros(2, 4), person=torch.zeros(2, 4))
    c1 = dict(scene=torch.ones(2, 4), person=torch.zeros(2, 4))
    out = samplers.euler(guidance.cfg(form.denoiser(net), c0, c1, 2.0), z, grids.uniform(4))
    assert out.x.shape == z.shape and out.nfe == 4 and net.calls == 4


class _SkippingNet:
    """A stand-in transformer: `skip_layers` removes numbered terms from the output; records each pass."""

    def __init__(self):
        self.passes = []

    def __call__(self, x, t, c, skip_layers=()):
        self.passes.append((x.shape[0], tuple(skip_layers)))
        return x * 0.5 + c + sum(0.1 * (i + 1) * c ** 2 for i in range(3) if i not in skip_layers)


def test_step_window_is_diffusers_skip_layer_rule():
    ts = grids.flow_match_euler(10, 3.0)
    lo, hi = guidance.step_window(ts, 0.01, 0.2)  # 10 steps: 0.1 < i < 2 -> step 1 only
    assert [i for i in range(10) if lo <= float(ts[i]) <= hi] == [1]
    lo, hi = guidance.step_window(ts, 0.0, 0.35)  # 0 < i < 3.5 (strict: not step 0)
    assert [i for i in range(10) if lo <= float(torch.tensor(float(ts[i]), dtype=torch.float32)) <= hi] == [1, 2, 3]
    lo, hi = guidance.step_window(grids.flow_match_euler(4, 3.0), 0.01, 0.2)  # 0.04 < i < 0.8: none
    assert lo > hi
    with pytest.raises(GenlabError, match="start <= stop"):
        guidance.SkipLayerGuidance((7,), start=0.5, stop=0.2)
    with pytest.raises(GenlabError, match="at least one layer"):
        guidance.SkipLayerGuidance(())


def test_skip_layer_guidance_term_formula_passes_and_window():
    form, net = formulation.rf(), _SkippingNet()
    model = form.denoiser(net)
    z, cu, cc = torch.randn(2, 4), {"c": torch.zeros(2, 4)}, {"c": torch.randn(2, 4)}
    ts = grids.flow_match_euler(10, 3.0)
    slg = guidance.SkipLayerGuidance((1, 2), scale=2.5, start=0.01, stop=0.35)
    fn = guidance.guided_terms(model, cu, [guidance.Term(cc, cu, 4.0), slg.term(cc, ts)])
    pu, pc = model(z, ts[2:3].float(), **cu).value, model(z, ts[2:3].float(), **cc).value
    ps = model(z, ts[2:3].float(), **cc, skip_layers=(1, 2)).value
    net.passes.clear()
    t_in = torch.full((2,), float(ts[2]))  # step 2: inside the window
    torch.testing.assert_close(fn(z, t_in).value, pu + 4.0 * (pc - pu) + 2.5 * (pc - ps))
    assert net.passes == [(4, ()), (2, (1, 2))]  # [uncond; cond] batched, the skipping pass on its own
    net.passes.clear()
    t_out = torch.full((2,), float(ts[5]))  # outside: plain CFG, one pass
    torch.testing.assert_close(fn(z, t_out).value, cfg_value := guidance.cfg(model, cu, cc, 4.0)(z, t_out).value)
    assert net.passes[0] == (4, ()) and len(net.passes) == 2 and cfg_value.shape == z.shape
    net.passes.clear()
    samplers.euler(fn, z, ts)  # over the whole run: the extra pass on steps 1, 2, 3 only
    assert [p for p in net.passes if p[1]] == [(2, (1, 2))] * 3 and len(net.passes) == 13
