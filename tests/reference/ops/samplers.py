"""Fast samplers written out in NumPy (float64), independently of the C++ code.

- Timestep lists: diffusers' DDIMScheduler.set_timesteps (timestep_spacing linspace / leading /
  trailing, steps_offset) and the DDIM repository's quadratic sequence
  (int(s) for s in np.linspace(0, sqrt(0.8 T), K) ** 2), for K in {1, 2, 7, 10, 50, 999, 1000}.
- DDIM chains: DDIMPipeline's loop over DDIMScheduler.step (prev_timestep = t - T // K,
  final_alpha_cumprod, clip_sample, use_clipped_model_output, eta with given noise), driven by a
  toy ε-model that the C++ test implements identically.
- DPM-Solver++(2M) chains: DPMSolverMultistepScheduler's formulas in its sigma parametrisation
  (sigma = sqrt((1 - ᾱ)/ᾱ), α_t = 1/sqrt(sigma² + 1), σ_t = sigma·α_t, final sigma 0, first order at
  the first and last steps, midpoint second order otherwise), over the timestep list given.
"""
import numpy as np

from ops.diffusion import LINEAR, COSINE, betas_for, coefficients

KS = [1, 2, 7, 10, 50, 999, 1000]


def ddim_timesteps(T, K, spacing, offset):
    if spacing == "linspace":
        return np.linspace(0, T - 1, K).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        ratio = T // K
        return (np.arange(0, K) * ratio).round()[::-1].copy().astype(np.int64) + offset
    if spacing == "trailing":
        ratio = T / K
        return np.round(np.arange(T, 0, -ratio)).astype(np.int64) - 1
    seq = np.linspace(0, np.sqrt(T * 0.8), K) ** 2  # quadratic (DDIM repository)
    return np.array([int(s) for s in list(seq)], dtype=np.int64)[::-1].copy()


def toy_eps(x, t, T):
    """A smooth nonlinear stand-in for a U-Net: ε(x, t) = tanh(0.9 x + 0.4 sin(7 t / T + 0.01 i))."""
    i = np.arange(x.size, dtype=np.float64)
    return np.tanh(0.9 * x + 0.4 * np.sin(7.0 * t / T + 0.01 * i)).astype(np.float32).astype(np.float64)


def ddim_chain(ac, timesteps, T, x, noises, eta, clip, use_clipped, alpha_to_one):
    K = len(timesteps)
    final = 1.0 if alpha_to_one else ac[0]
    for k, t in enumerate(timesteps):
        eps = toy_eps(x, t, T)
        prev = t - T // K
        a_t = ac[t]
        a_prev = ac[prev] if prev >= 0 else final
        b_t = 1 - a_t
        x0 = (x - b_t ** 0.5 * eps) / a_t ** 0.5
        if clip:
            x0 = np.clip(x0, -1.0, 1.0)
        variance = (1 - a_prev) / b_t * (1 - a_t / a_prev)
        std = eta * variance ** 0.5
        if use_clipped:
            eps = (x - a_t ** 0.5 * x0) / b_t ** 0.5
        x = a_prev ** 0.5 * x0 + (1 - a_prev - std ** 2) ** 0.5 * eps
        if eta > 0:
            x = x + std * noises[k]
        x = x.astype(np.float32).astype(np.float64)  # the C++ chain stores float32 between steps
    return x


def dpm_solver_chain(ac, timesteps, T, x, clip):
    sig = list(np.sqrt((1 - ac[timesteps]) / ac[timesteps])) + [0.0]

    def alpha_sigma(s):
        a = 1.0 / np.sqrt(s ** 2 + 1)
        return a, s * a

    def lam(s):
        a, sg = alpha_sigma(s)
        with np.errstate(divide="ignore"):
            return np.log(a) - np.log(sg)

    outputs = []
    for k, t in enumerate(timesteps):
        eps = toy_eps(x, t, T)
        a_s, s_s = alpha_sigma(sig[k])
        x0 = (x - s_s * eps) / a_s
        if clip:
            x0 = np.clip(x0, -1.0, 1.0)
        outputs.append(x0)
        a_t, s_t = alpha_sigma(sig[k + 1])
        h = lam(sig[k + 1]) - lam(sig[k])
        first_order = k == 0 or k == len(timesteps) - 1
        if first_order:
            x = (s_t / s_s) * x - a_t * (np.exp(-h) - 1.0) * x0
        else:
            h0 = lam(sig[k]) - lam(sig[k - 1])
            r0 = h0 / h
            d0, d1 = outputs[-1], (1.0 / r0) * (outputs[-1] - outputs[-2])
            x = (s_t / s_s) * x - a_t * (np.exp(-h) - 1.0) * d0 - 0.5 * a_t * (np.exp(-h) - 1.0) * d1
        x = x.astype(np.float32).astype(np.float64)
        outputs[-1] = outputs[-1].astype(np.float32).astype(np.float64)
    return x


def cases():
    for T in (1000, 37):
        for spacing in ("leading", "trailing", "linspace", "quadratic"):
            for K in [k for k in KS if k <= T] + ([T] if T not in KS else []):
                for offset in ((0, 1) if spacing == "leading" else (0,)):
                    ts = ddim_timesteps(T, K, spacing, offset)
                    valid = len(ts) == K and len(set(ts.tolist())) == K and ts.max() < T and ts.min() >= 0
                    yield f"timesteps_T{T}_{spacing}_K{K:04d}_off{offset}", {
                        "T": np.array([T]), "K": np.array([K]), "offset": np.array([offset]),
                        "spacing": np.array([("leading", "trailing", "linspace", "quadratic").index(spacing)]),
                        "valid": np.array([int(valid)]), "timesteps": ts}

    rng = np.random.default_rng(11)
    n = 64
    for kind, T in ((LINEAR, 1000), (COSINE, 200)):
        ac = coefficients(betas_for(kind, T, 1e-4, 0.02))["alphas_cumprod"]
        for K, offset in ((10, 0), (50, 1), (T, 0)):
            ts = ddim_timesteps(T, K, "leading", offset)
            for eta, clip, use_clipped, alpha_to_one in ((0.0, False, False, True), (0.0, True, False, False),
                                                         (0.5, True, True, True), (1.0, False, False, True)):
                x_T = (rng.standard_normal(n)).astype(np.float32).astype(np.float64)
                noises = rng.standard_normal((K, n)).astype(np.float32).astype(np.float64)
                out = ddim_chain(ac, ts, T, x_T.copy(), noises, eta, clip, use_clipped, alpha_to_one)
                yield (f"ddim_{'linear' if kind == LINEAR else 'cosine'}{T}_K{K}_off{offset}_eta{eta}"
                       f"_{'clip' if clip else 'noclip'}{'_rederive' if use_clipped else ''}"
                       f"{'' if alpha_to_one else '_alpha0'}"), {
                    "kind": np.array([kind]), "T": np.array([T]), "K": np.array([K]), "offset": np.array([offset]),
                    "eta": np.array([eta]), "clip": np.array([int(clip)]), "rederive": np.array([int(use_clipped)]),
                    "alpha_to_one": np.array([int(alpha_to_one)]), "x_T": x_T, "noise": noises, "x_0": out}
        for K, spacing in ((5, "trailing"), (20, "linspace"), (49, "leading")):
            ts = ddim_timesteps(T, K, spacing, 0)
            for clip in (False, True):
                x_T = (rng.standard_normal(n) * 1.0).astype(np.float32).astype(np.float64)
                out = dpm_solver_chain(ac, ts, T, x_T.copy(), clip)
                yield f"dpm_{'linear' if kind == LINEAR else 'cosine'}{T}_K{K}_{spacing}_{'clip' if clip else 'noclip'}", {
                    "kind": np.array([kind]), "T": np.array([T]), "timesteps": ts, "clip": np.array([int(clip)]),
                    "x_T": x_T, "x_0": out}
