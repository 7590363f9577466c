"""genlab.core.flow: probability paths, predictions, timestep densities, loss weightings, time grids,
samplers and guidance -- the diffusion / flow-matching maths every genlab system shares.

Convention (the only one in genlab)
-----------------------------------
t = 0 is data, t = 1 is noise, and

    z_t = a_t x0 + b_t eps,   eps ~ N(0, I),   lambda_t = log(a_t^2 / b_t^2),   sigma_t = b_t / a_t.

Other libraries' conventions are converted only at the edges: diffusers' discrete timestep n is
t = (n + 1) / 1000 on `LDMLinearPath`; EDM's sigma is `path.sigma(t)` (x = z / a); SD3 / diffusers flow
sigmas are t on `RectifiedFlowPath`; facebookresearch/flow_matching's time is 1 - t.

Public API
----------
Paths (`paths`): `RectifiedFlowPath()` (a = 1-t, b = t), `CosinePath()`, `LDMLinearPath()` (SD's 1000-step
    scaled-linear betas 0.00085..0.012, continuous), `EDMPath(p_mean, p_std)`. Methods a, b, da, db, logsnr,
    dlogsnr, sigma, t_from_sigma, t_from_logsnr.
Predictions (`prediction`): kinds "x0", "eps", "v" (= a eps - b x0), "velocity" (= dz/dt = a' x0 + b' eps);
    `convert(value, src, dst, z, t, path)`, `to_x0_eps`, `from_x0_eps`; the typed `Prediction(kind, value, z,
    t, path)` with `.x0 .eps .v .velocity`.
Formulations (`formulation`): `Formulation(name, path, prediction, density, sigma_data, edm_sign)` where
    prediction is a kind or "edm" (EDM preconditioning c_skip, c_out, c_in, c_noise with configurable sigma_data).
    `f.denoiser(net)` turns `net(net_input, net_time, **cond) -> tensor` into `model(z, t, **cond) ->
    Prediction`; `f.loss(net, x0, **cond) -> LossOutput`; `f.noise`, `f.target`, `f.net_time`, `f.default_grid`.
    Presets: rf(), rf_lognorm(m, s), rf_mode(s), rf_cosmap(), eps_linear(), v_linear(), eps_cos(), v_cos(),
    edm(p_mean, p_std, sigma_data), edm_v(p_mean, p_std) (SVD: sigma_data = 1, v-prediction, c_noise = ln(sigma)/4,
    weight (1 + sigma^2) / sigma^2). `velocity_mse_at_levels` is a validation loss comparable across formulations.
Densities (`densities`): `Uniform()`, `LogitNormal(m, s)`, `Mode(s)`, `CosMap()`, `DiscreteUniform(T)`, each with
    `sample(n, generator, device, dtype, stratified)`, `icdf(u)` and `pdf(t)`.
Weightings (`weighting`): SD3's unified loss -1/2 w_t lambda'_t ||eps_hat - eps||^2 (`unified_loss`) and w_t of
    every variant: `w_rf`, `w_density`, `w_eps`, `w_eps_cos`, `w_v_cos`, `w_edm`, `w_cfm`.
Time grids (`grids`): `uniform`, `shifted`, `flow_match_euler` (pretrained SD3's), `karras`, `discrete` (diffusers leading / trailing / linspace),
    `shift(t, alpha)` = alpha t / (1 + (alpha - 1) t), `shift_alpha(m_pixels, n_pixels)`.
Samplers (`samplers`): `euler`, `heun`, `ddim`, all `sample(model, x, ts, extra_args=None, callback=None,
    progress=False, return_trajectory=False) -> SampleOutput(x, nfe, trajectory)`.
Guidance (`guidance`): `guided(model, conds, scales)` (p_0 + sum_k s_k (p_k - p_{k-1}) in one batched forward,
    broadcastable tensor scales), `cfg(model, uncond, cond, scale)`, `linear_frame_scales` (SVD);
    `guided_terms(model, base, [Term(cond, ref, scale, t_range), ...])` for terms on time windows, with
    `SkipLayerGuidance(layers, scale, start, stop).term(cond, ts)` (SD3.5) and `step_window(ts, start, stop)`.

Example (rectified flow, logit-normal training, 28 Euler steps with CFG 4 at shift 3):

    from genlab.core.flow import formulation, grids, guidance, samplers
    form = formulation.rf_lognorm(0.0, 1.0)
    loss = form.loss(net, x0, context=ctx).loss                     # training
    model = guidance.cfg(form.denoiser(net), {"context": null_ctx}, {"context": ctx}, 4.0)
    x = samplers.euler(model, torch.randn(shape), grids.shifted(28, 3.0)).x
"""

from genlab.core.flow import densities, formulation, grids, guidance, paths, prediction, samplers, weighting
from genlab.core.flow.densities import CosMap, DiscreteUniform, LogitNormal, Mode, TimestepDensity, Uniform
from genlab.core.flow.formulation import EDMCoefficients, Formulation, LossOutput, velocity_mse_at_levels
from genlab.core.flow.guidance import SkipLayerGuidance, Term, cfg, guided, guided_terms, linear_frame_scales
from genlab.core.flow.paths import CosinePath, EDMPath, LDMLinearPath, Path, RectifiedFlowPath
from genlab.core.flow.prediction import KINDS, Prediction, convert, from_x0_eps, to_x0_eps
from genlab.core.flow.samplers import SAMPLERS, SampleOutput, ddim, euler, heun

__all__ = [
    "KINDS", "SAMPLERS", "CosMap", "CosinePath", "DiscreteUniform", "EDMCoefficients", "EDMPath", "Formulation",
    "LDMLinearPath", "LogitNormal", "LossOutput", "Mode", "Path", "Prediction", "RectifiedFlowPath",
    "SampleOutput", "SkipLayerGuidance", "Term", "TimestepDensity", "Uniform", "cfg", "convert", "ddim", "densities", "euler", "formulation",
    "from_x0_eps", "grids", "guidance", "guided", "guided_terms", "heun", "linear_frame_scales", "paths", "prediction",
    "samplers", "to_x0_eps", "velocity_mse_at_levels", "weighting",
]
