"""Diffusion schedule coefficients and the DDPMScheduler step, recomputed in float64 NumPy.

Schedules follow HO-REPO diffusion_utils_2.py (get_beta_schedule('linear'), GaussianDiffusion2's
coefficients, p_mean_variance's fixedlarge/fixedsmall) and IDDPM-REPO betas_for_alpha_bar (cosine).
Float64 arrays travel bit-exactly as int64 (`<name>_bits`: the float64 bit pattern), since the
harness stores other floats as float32.

Step cases write out diffusers' DDPMScheduler.step (scheduling_ddpm.py, facts §5.2) in NumPy on
float32-rounded random inputs: alpha_t and beta_t are re-derived from alphas_cumprod as diffusers
does, not read from the schedule, so the C++ posterior coefficients are checked against an
independent formula. (diffusers itself builds betas in float32; here the float64 schedule is used,
so the comparison isolates the step formula.)
"""
import math

import numpy as np

LINEAR, COSINE = 0, 1


def bits(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64)).view(np.int64)


def betas_for(kind, T, beta_start, beta_end):
    if kind == LINEAR:
        return np.linspace(beta_start, beta_end, T, dtype=np.float64)
    alpha_bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999) for i in range(T)],
                    dtype=np.float64)


def coefficients(betas):
    T = len(betas)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    index0 = post_var[1] if T > 1 else betas[0]
    large_var = np.append(index0, betas[1:])
    return {
        "betas": betas, "alphas": alphas, "alphas_cumprod": ac, "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": np.sqrt(ac), "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac), "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.append(index0, post_var[1:])),
        "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
        "large_variance": large_var, "large_log_variance": np.log(large_var),
    }


def ddpm_scheduler_step(ac, eps, t, x, z, variance_type, clip_sample):
    """diffusers DDPMScheduler.step with prev_t = t - 1 (no set_timesteps), in float64."""
    prev_t = t - 1
    alpha_prod_t = ac[t]
    alpha_prod_t_prev = ac[prev_t] if prev_t >= 0 else 1.0
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    current_alpha_t = alpha_prod_t / alpha_prod_t_prev
    current_beta_t = 1 - current_alpha_t
    pred_original_sample = (x - beta_prod_t ** 0.5 * eps) / alpha_prod_t ** 0.5
    if clip_sample:
        pred_original_sample = np.clip(pred_original_sample, -1.0, 1.0)
    coeff_orig = (alpha_prod_t_prev ** 0.5 * current_beta_t) / beta_prod_t
    coeff_cur = current_alpha_t ** 0.5 * beta_prod_t_prev / beta_prod_t
    pred_prev = coeff_orig * pred_original_sample + coeff_cur * x
    if t > 0:
        # _get_variance
        variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t
        variance = max(variance, 1e-20)
        if variance_type == "fixed_large":
            variance = current_beta_t
        pred_prev = pred_prev + variance ** 0.5 * z
    return pred_prev


SCHEDULES = [
    ("linear_1000", LINEAR, 1000, 1e-4, 0.02),
    ("linear_37", LINEAR, 37, 1e-3, 0.3),
    ("linear_2", LINEAR, 2, 0.1, 0.2),
    ("linear_1", LINEAR, 1, 0.05, 0.05),
    ("cosine_1000", COSINE, 1000, 0.0, 0.0),
    ("cosine_50", COSINE, 50, 0.0, 0.0),
]


def cases():
    for name, kind, T, beta_start, beta_end in SCHEDULES:
        arrays = {"kind": np.array([kind]), "T": np.array([T]),
                  "beta_start_bits": bits([beta_start]), "beta_end_bits": bits([beta_end])}
        for key, value in coefficients(betas_for(kind, T, beta_start, beta_end)).items():
            arrays[key + "_bits"] = bits(value)
        yield "schedule_" + name, arrays

    rng = np.random.default_rng(7)
    n = 257
    for sname, kind, T, beta_start, beta_end in [SCHEDULES[0], SCHEDULES[4], SCHEDULES[1]]:
        ac = coefficients(betas_for(kind, T, beta_start, beta_end))["alphas_cumprod"]
        for t in sorted({0, 1, 2, T // 2, T - 2, T - 1}):
            for variance_type in ("fixed_large", "fixed_small"):
                for clip in (False, True):
                    # x_t of roughly the right scale for t, with some values that clipping changes
                    x = (rng.standard_normal(n) * 1.3).astype(np.float32).astype(np.float64)
                    eps = rng.standard_normal(n).astype(np.float32).astype(np.float64)
                    z = rng.standard_normal(n).astype(np.float32).astype(np.float64)
                    out = ddpm_scheduler_step(ac, eps, t, x, z, variance_type, clip)
                    case = f"step_{sname}_t{t:04d}_{variance_type}_{'clip' if clip else 'noclip'}"
                    yield case, {"kind": np.array([kind]), "T": np.array([T]),
                                 "beta_start_bits": bits([beta_start]), "beta_end_bits": bits([beta_end]),
                                 "t": np.array([t]), "large": np.array([variance_type == "fixed_large"]),
                                 "clip": np.array([clip]), "x_t": x, "eps": eps, "z": z,
                                 "x_prev": out}
