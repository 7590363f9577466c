"""Analytic tests of paths, prediction conversions, formulations and loss weightings."""

import math

import pytest
import torch

from genlab.core.flow import formulation, weighting
from genlab.core.flow.densities import LogitNormal
from genlab.core.flow.grids import shift
from genlab.core.flow.paths import CosinePath, EDMPath, LDMLinearPath, RectifiedFlowPath
from genlab.core.flow.prediction import KINDS, Prediction, convert, from_x0_eps, to_x0_eps

PATHS = [RectifiedFlowPath(), CosinePath(), LDMLinearPath(), EDMPath(-1.2, 1.2), EDMPath(0.5, 1.6)]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: repr(p))
def test_endpoints_and_derivatives(path):
    t0, t1 = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    assert float(path.a(t0)) == pytest.approx(1.0, abs=1e-12)
    assert float(path.b(t0)) == pytest.approx(0.0, abs=1e-12)
    if isinstance(path, LDMLinearPath):  # SD's schedule stops short of pure noise
        assert float(path.a(t1)) == pytest.approx(path.alphas_cumprod()[-1].sqrt().item(), rel=1e-12)
        assert 0.06 < float(path.a(t1)) < 0.07
    else:
        assert float(path.a(t1)) == pytest.approx(0.0, abs=1e-12)
        assert float(path.b(t1)) == pytest.approx(1.0, abs=1e-12)
    # derivatives against central finite differences (inside the LDM pieces, away from nodes)
    t = torch.tensor([0.1234, 0.3456, 0.5678, 0.7891], dtype=torch.float64)
    h = 1e-7
    torch.testing.assert_close(path.da(t), (path.a(t + h) - path.a(t - h)) / (2 * h), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(path.db(t), (path.b(t + h) - path.b(t - h)) / (2 * h), rtol=1e-5, atol=1e-6)
    lam = path.logsnr(t)
    torch.testing.assert_close(path.dlogsnr(t), (path.logsnr(t + h) - path.logsnr(t - h)) / (2 * h), rtol=1e-5, atol=1e-5)
    # log-SNR strictly decreasing, sigma inverts
    assert bool((lam[1:] < lam[:-1]).all())
    torch.testing.assert_close(path.t_from_sigma(path.sigma(t)), t, rtol=0, atol=1e-9)
    torch.testing.assert_close(path.t_from_logsnr(lam), t, rtol=0, atol=1e-9)


def test_ldm_linear_matches_diffusers_table():
    schedulers = pytest.importorskip("diffusers.schedulers")
    ref = schedulers.DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").alphas_cumprod
    path = LDMLinearPath()
    t = path.timestep_to_t(torch.arange(1000))
    torch.testing.assert_close(path.a(t) ** 2, ref.double(), rtol=2e-6, atol=0)
    torch.testing.assert_close(path.a(t) ** 2 + path.b(t) ** 2, torch.ones(1000, dtype=torch.float64))
    assert float(path.t_to_timestep(t[37])) == pytest.approx(37.0)


def test_rf_closed_forms():
    path, t = RectifiedFlowPath(), torch.rand(16, dtype=torch.float64) * 0.98 + 0.01
    torch.testing.assert_close(path.logsnr(t), 2 * torch.log((1 - t) / t))
    torch.testing.assert_close(path.dlogsnr(t), -2 / (t * (1 - t)))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: repr(p))
def test_conversions_round_trip(path):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 3, 4, 4, generator=g), torch.randn(6, 3, 4, 4, generator=g)
    t = torch.tensor([0.02, 0.2, 0.4, 0.6, 0.8, 0.97])
    z = (path.a(t)[:, None, None, None] * x0 + path.b(t)[:, None, None, None] * eps)
    targets = {k: from_x0_eps(k, x0, eps, t, path) for k in KINDS}
    torch.testing.assert_close(targets["v"], path.a(t)[:, None, None, None] * eps - path.b(t)[:, None, None, None] * x0)
    for src in KINDS:
        x0_hat, eps_hat = to_x0_eps(src, targets[src], z, t, path)
        torch.testing.assert_close(x0_hat, x0, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(eps_hat, eps, rtol=1e-4, atol=1e-4)
        for dst in KINDS:
            there = convert(targets[src], src, dst, z, t, path)
            torch.testing.assert_close(there, targets[dst], rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(convert(there, dst, src, z, t, path), targets[src], rtol=1e-4, atol=1e-4)
    p = Prediction("velocity", targets["velocity"], z, t, path)
    torch.testing.assert_close(p.x0, x0, rtol=1e-4, atol=1e-4)


def test_rf_velocity_is_eps_minus_x0_and_sd3_formulas():
    path = RectifiedFlowPath()
    x0, eps, t = torch.randn(5, 7), torch.randn(5, 7), torch.rand(5)
    v = from_x0_eps("velocity", x0, eps, t, path)
    torch.testing.assert_close(v, eps - x0)
    z = (1 - t)[:, None] * x0 + t[:, None] * eps
    torch.testing.assert_close(convert(v, "velocity", "x0", z, t, path), z - t[:, None] * v)  # sd3.5 denoised
    torch.testing.assert_close(convert(v, "velocity", "eps", z, t, path), z + (1 - t)[:, None] * v, atol=1e-6, rtol=1e-6)


# ---- formulations -------------------------------------------------------------------------------
def _oracle(form, x0, eps):
    """A 'network' that returns the exact native target for the z it is given (for a fixed x0, eps)."""
    def net(net_in, net_time, **_):
        t = _t_from_net_time(form, net_time)
        return form.target(x0, eps, t)
    return net


def _t_from_net_time(form, net_time):
    if form.prediction == "edm":
        return form.path.t_from_sigma(torch.exp(4 * net_time.double()))
    if isinstance(form.path, LDMLinearPath):
        return (net_time.double() + 1) / form.path.num_steps
    return net_time.double() / 1000


PRESETS = [formulation.rf(), formulation.rf_lognorm(0.5, 0.6), formulation.rf_mode(1.29), formulation.rf_cosmap(), formulation.eps_linear(), formulation.v_linear(),
           formulation.eps_cos(), formulation.v_cos(), formulation.edm(), formulation.edm(0.0, 0.6, 0.5), formulation.edm_v()]


@pytest.mark.parametrize("form", PRESETS, ids=lambda f: f.name)
def test_formulation_oracle_has_zero_loss_and_exact_predictions(form):
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(8, 2, 3, 3, generator=g), torch.randn(8, 2, 3, 3, generator=g)
    t = form.sample_t(8, generator=g).double()
    out = form.loss(_oracle(form, x0, eps), x0.double(), t=t, eps=eps.double())
    assert out.loss.shape == () and out.per_sample.shape == (8,)
    assert float(out.loss) < 1e-12
    z = form.noise(x0.double(), eps.double(), t)
    pred = form.denoiser(_oracle(form, x0.double(), eps.double()))(z, t)
    torch.testing.assert_close(pred.x0, x0.double(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(pred.eps, eps.double(), rtol=1e-6, atol=1e-6)


def test_edm_preconditioning_matches_karras_table():
    form = formulation.edm(-1.2, 1.2, sigma_data=0.5)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    sigma, a = form.path.sigma(t), form.path.a(t)
    c = form.edm_coefficients(t)
    sd = 0.5
    # coefficients act on z = a x, so Karras c_skip = c.c_skip * a and c_in = c.c_in * a
    torch.testing.assert_close(c.c_skip * a, sd**2 / (sigma**2 + sd**2))
    torch.testing.assert_close(c.c_out, sigma * sd / torch.sqrt(sigma**2 + sd**2))
    torch.testing.assert_close(c.c_in * a, 1 / torch.sqrt(sigma**2 + sd**2))
    torch.testing.assert_close(c.c_noise, 0.25 * torch.log(sigma))
    # native loss weight = EDM's lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 on ||D - x0||^2
    torch.testing.assert_close(1 / c.c_out**2, (sigma**2 + sd**2) / (sigma * sd) ** 2)


def test_edm_sigma_data_1_v_sign_equals_v_prediction():
    """SVD's EDM (sigma_data = 1, c_out = -sigma/sqrt(1+sigma^2)) is v-prediction on the VP path."""
    edm_v = formulation.edm_v(-1.2, 1.2)
    v_form = formulation.Formulation("v on edm path", edm_v.path, "v")
    g = torch.Generator().manual_seed(2)
    z, raw = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([0.05, 0.3, 0.7, 0.999], dtype=torch.float64)
    torch.testing.assert_close(edm_v.net_input(z, t), z)  # c_in x = z when sigma_data = 1
    p_edm, p_v = edm_v.wrap_output(raw, z, t), v_form.wrap_output(raw, z, t)
    torch.testing.assert_close(p_edm.x0, p_v.x0)
    torch.testing.assert_close(p_edm.eps, p_v.eps)
    sigma = edm_v.path.sigma(t)
    torch.testing.assert_close(edm_v.edm_coefficients(t).c_out, -sigma / torch.sqrt(1 + sigma**2))
    torch.testing.assert_close(1 / edm_v.edm_coefficients(t).c_out ** 2, (1 + sigma**2) / sigma**2)
    # training targets agree too
    x0, eps = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(edm_v.target(x0, eps, t), v_form.target(x0, eps, t))


def test_net_time_conventions():
    t = torch.tensor([0.25, 0.5])
    torch.testing.assert_close(formulation.rf().net_time(t), 1000 * t)
    torch.testing.assert_close(formulation.eps_linear().net_time(torch.tensor([0.001, 1.0])), torch.tensor([0.0, 999.0]))
    edm = formulation.edm()
    torch.testing.assert_close(edm.net_time(t).double(), 0.25 * torch.log(edm.path.sigma(t.double())), rtol=1e-6, atol=1e-6)


# ---- SD3's unified weighting (section 2, appendix B) ----------------------------------------------
def _errors(path, t, g):
    """x0, eps and a wrong eps_hat; z and every native prediction implied by eps_hat at fixed z."""
    x0, eps = torch.randn(len(t), 6, generator=g, dtype=torch.float64), torch.randn(len(t), 6, generator=g, dtype=torch.float64)
    eps_hat = eps + 0.3 * torch.randn(len(t), 6, generator=g, dtype=torch.float64)
    a, b = path.a(t)[:, None], path.b(t)[:, None]
    z = a * x0 + b * eps
    return x0, eps, eps_hat, z


def _native_err(kind, path, t, x0, eps, eps_hat, z):
    hat = convert(eps_hat, "eps", kind, z, t, path)
    true = from_x0_eps(kind, x0, eps, t, path)
    return ((hat - true) ** 2).sum(1)


def test_unified_weighting_identities():
    g = torch.Generator().manual_seed(3)
    t = torch.linspace(0.05, 0.95, 13, dtype=torch.float64)
    # rf: velocity MSE == unified loss with w = t/(1-t)
    rf = RectifiedFlowPath()
    x0, eps, eps_hat, z = _errors(rf, t, g)
    torch.testing.assert_close(_native_err("velocity", rf, t, x0, eps, eps_hat, z), weighting.unified_loss(eps_hat, eps, t, rf, weighting.w_rf(t)))
    # CFM on any path == velocity MSE; check on the cosine path
    cos = CosinePath()
    x0, eps, eps_hat, z = _errors(cos, t, g)
    torch.testing.assert_close(_native_err("velocity", cos, t, x0, eps, eps_hat, z), weighting.unified_loss(eps_hat, eps, t, cos, weighting.w_cfm(t, cos)))
    # eps/cos: eps-MSE == pi * unified(sech(lambda/2)); v/cos: v-MSE == (pi/2) * unified(exp(-lambda/2))
    lam = cos.logsnr(t)
    torch.testing.assert_close(_native_err("eps", cos, t, x0, eps, eps_hat, z), weighting.unified_loss(eps_hat, eps, t, cos, weighting.w_eps_cos(lam)) / math.pi)
    torch.testing.assert_close(_native_err("v", cos, t, x0, eps, eps_hat, z), weighting.unified_loss(eps_hat, eps, t, cos, weighting.w_v_cos(lam)) * 2 / math.pi)
    # plain eps-MSE on the LDM path == unified with w = -2 / lambda'
    ldm = LDMLinearPath()
    x0, eps, eps_hat, z = _errors(ldm, t + 0.0003, g)
    torch.testing.assert_close(_native_err("eps", ldm, t + 0.0003, x0, eps, eps_hat, z),
                               weighting.unified_loss(eps_hat, eps, t + 0.0003, ldm, weighting.w_eps(t + 0.0003, ldm)))


@pytest.mark.parametrize("pm,ps", [(-1.2, 1.2), (0.0, 0.6), (0.6, 1.2)])
def test_edm_weighting_identity(pm, ps):
    """EDM's lambda(sigma) ||D - x0||^2 with uniform t on edm(P_m, P_s) == 8 * unified(w^EDM) (sigma_data 0.5)."""
    form = formulation.edm(pm, ps, 0.5)
    path, g = form.path, torch.Generator().manual_seed(4)
    t = torch.linspace(0.05, 0.95, 11, dtype=torch.float64)
    x0, eps, eps_hat, z = _errors(path, t, g)
    x0_hat = convert(eps_hat, "eps", "x0", z, t, path)
    c = form.edm_coefficients(t)
    native = ((x0_hat - x0) ** 2).sum(1) / c.c_out**2
    unified = weighting.unified_loss(eps_hat, eps, t, path, weighting.w_edm(path.logsnr(t), pm, ps, 0.5))
    torch.testing.assert_close(native, 8 * unified)


def test_density_weighting_is_sampling_identity():
    """E_{t~pi}[rf loss] == E_{t~U}[unified loss with w^pi]: check the integrand ratio is pi(t)."""
    dens, rf = LogitNormal(0.5, 0.6), RectifiedFlowPath()
    g = torch.Generator().manual_seed(5)
    t = torch.linspace(0.05, 0.95, 9, dtype=torch.float64)
    x0, eps, eps_hat, z = _errors(rf, t, g)
    ratio = weighting.unified_loss(eps_hat, eps, t, rf, weighting.w_density(t, dens)) / weighting.unified_loss(eps_hat, eps, t, rf, weighting.w_rf(t))
    torch.testing.assert_close(ratio, dens.pdf(t))


def test_resolution_shift_lowers_logsnr_by_log_ratio():
    rf = RectifiedFlowPath()
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    for alpha in (1.5, 3.0):
        torch.testing.assert_close(rf.logsnr(shift(t, alpha)), rf.logsnr(t) - 2 * math.log(alpha))


def test_velocity_mse_at_levels_zero_for_oracle_and_comparable():
    g = torch.Generator().manual_seed(6)
    x0, eps = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    for form in (formulation.rf(), formulation.v_cos(), formulation.edm()):
        def net(net_in, net_time, form=form):
            t = _t_from_net_time(form, net_time)
            return form.target(x0, eps, t)
        losses = formulation.velocity_mse_at_levels(form, net, x0, eps)
        assert losses.shape == (8,) and float(losses.max()) < 1e-10
