"""Improved DDPM's learned variance (Nichol & Dhariwal 2021), written out in float64 PyTorch.

- loss_*: IDDPM-REPO's training_losses for LEARNED_RANGE + RESCALED_MSE: L_simple (mean squared ε
  error) + λ·T · mean over items of _vb_terms_bpd (the KL of the step from t, or the discretized
  decoder at t = 0, in bits/dim), where the mean of p_θ uses ε.detach() (the stop-gradient) and x̂0
  is not clipped. Gradients with respect to ε and v come from autograd. Two differences from the
  repository, both deliberate: Φ is exact (torch.special.ndtr, where IDDPM uses a tanh
  approximation), and 1 − Φ(x) is computed as Φ(−x).
- step_*: diffusers' DDPMScheduler.step with variance_type "learned_range" (prev_t = t − 1):
  log σ² = frac·log β_t + (1 − frac)·log β̃_t, frac = (v + 1)/2, noise exp(0.5 log σ²)·z.
"""
import math

import numpy as np
import torch

from ops.diffusion import LINEAR, COSINE, betas_for, coefficients, bits

LN2 = math.log(2.0)


def discretized_log_likelihood(x, mean, log_scale):
    inv_stdv = torch.exp(-log_scale)
    plus = (x - mean + 1.0 / 255.0) * inv_stdv
    minus = (x - mean - 1.0 / 255.0) * inv_stdv
    cdf_plus = torch.special.ndtr(plus)
    one_minus_cdf_min = torch.special.ndtr(-minus)
    delta = cdf_plus - torch.special.ndtr(minus)
    return torch.where(x < -0.999, torch.log(cdf_plus.clamp(min=1e-12)),
                       torch.where(x > 0.999, torch.log(one_minus_cdf_min.clamp(min=1e-12)),
                                   torch.log(delta.clamp(min=1e-12))))


def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def hybrid_loss(c, x0, x_t, noise, t, eps, v, weight):
    T = len(c["betas"])
    k = {name: torch.tensor(c[name], dtype=torch.float64)[t].reshape(-1, 1) for name in
         ("sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_mean_coef1",
          "posterior_mean_coef2", "posterior_log_variance_clipped", "betas")}
    x0_hat = k["sqrt_recip_alphas_cumprod"] * x_t - k["sqrt_recipm1_alphas_cumprod"] * eps.detach()
    model_mean = k["posterior_mean_coef1"] * x0_hat + k["posterior_mean_coef2"] * x_t
    true_mean = k["posterior_mean_coef1"] * x0 + k["posterior_mean_coef2"] * x_t
    min_log, max_log = k["posterior_log_variance_clipped"], torch.log(k["betas"])
    frac = (v + 1) / 2
    model_log_variance = frac * max_log + (1 - frac) * min_log
    kl = normal_kl(true_mean, min_log, model_mean, model_log_variance).mean(dim=1) / LN2
    nll = -discretized_log_likelihood(x0, model_mean, 0.5 * model_log_variance).mean(dim=1) / LN2
    vb = torch.where(torch.tensor(t) == 0, nll, kl)
    simple = ((eps - noise) ** 2).mean()
    total = simple + weight * T * vb.mean()
    return simple, vb.mean(), total


def cases():
    rng = np.random.default_rng(11)
    B, D = 6, 30
    for sname, kind, T, b0, b1 in [("linear_1000", LINEAR, 1000, 1e-4, 0.02), ("cosine_50", COSINE, 50, 0.0, 0.0)]:
        c = coefficients(betas_for(kind, T, b0, b1))
        for weight in (0.001, 0.05):
            t = np.array([0, 1, 2, T // 2, T - 2, T - 1], dtype=np.int64)
            # x0 on the 8-bit grid, with edge values (the decoder's open bins)
            x0 = rng.integers(0, 256, size=(B, D)).astype(np.float64) / 127.5 - 1
            x0[:, :3] = -1.0
            x0[:, 3:6] = 1.0
            x0 = x0.astype(np.float32).astype(np.float64)
            noise = rng.standard_normal((B, D)).astype(np.float32).astype(np.float64)
            sa = np.sqrt(c["alphas_cumprod"])[t][:, None]
            s1 = np.sqrt(1 - c["alphas_cumprod"])[t][:, None]
            x_t = (sa * x0 + s1 * noise).astype(np.float32).astype(np.float64)
            eps = (noise + 0.3 * rng.standard_normal((B, D))).astype(np.float32).astype(np.float64)
            v = rng.uniform(-1.2, 1.2, size=(B, D)).astype(np.float32).astype(np.float64)
            eps_t = torch.tensor(eps, requires_grad=True)
            v_t = torch.tensor(v, requires_grad=True)
            simple, vb, total = hybrid_loss(c, torch.tensor(x0), torch.tensor(x_t), torch.tensor(noise), t, eps_t,
                                            v_t, weight)
            total.backward()
            yield f"loss_{sname}_w{weight}", {
                "kind": np.array([kind]), "T": np.array([T]), "beta_start_bits": bits([b0]),
                "beta_end_bits": bits([b1]), "weight_bits": bits([weight]), "t": t, "x0": x0, "x_t": x_t,
                "noise": noise, "eps": eps, "v": v, "simple_bits": bits([simple.item()]),
                "vlb_bits": bits([vb.item()]), "total_bits": bits([total.item()]), "d_eps": eps_t.grad,
                "d_v": v_t.grad}

    n = 97
    for sname, kind, T, b0, b1 in [("linear_1000", LINEAR, 1000, 1e-4, 0.02), ("cosine_50", COSINE, 50, 0.0, 0.0)]:
        c = coefficients(betas_for(kind, T, b0, b1))
        ac = c["alphas_cumprod"]
        for t in (0, 1, T // 2, T - 1):
            x = (rng.standard_normal(n) * 1.3).astype(np.float32).astype(np.float64)
            eps = rng.standard_normal(n).astype(np.float32).astype(np.float64)
            v = rng.uniform(-1, 1, n).astype(np.float32).astype(np.float64)
            z = rng.standard_normal(n).astype(np.float32).astype(np.float64)
            a_t, a_prev = ac[t], (ac[t - 1] if t > 0 else 1.0)
            beta_t = 1 - a_t / a_prev
            x0 = np.clip((x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t), -1, 1)
            mean = (np.sqrt(a_prev) * beta_t / (1 - a_t)) * x0 + (np.sqrt(1 - beta_t) * (1 - a_prev) / (1 - a_t)) * x
            if t > 0:
                variance = max((1 - a_prev) / (1 - a_t) * beta_t, 1e-20)
                frac = (v + 1) / 2
                log_var = frac * np.log(beta_t) + (1 - frac) * np.log(variance)
                mean = mean + np.exp(0.5 * log_var) * z
            yield f"step_{sname}_t{t:04d}", {
                "kind": np.array([kind]), "T": np.array([T]), "beta_start_bits": bits([b0]),
                "beta_end_bits": bits([b1]), "t": np.array([t]), "x_t": x, "eps": eps, "v": v, "z": z,
                "x_prev": mean}
