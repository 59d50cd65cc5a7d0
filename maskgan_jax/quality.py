"""Noise quality: is generated noise what its target is? Measures, pass thresholds and the gate.

Every measure compares generated clips with target clips (the same number of clips is
the intended use) after bringing the generated set to the target's overall level, so
that only the *shape* of the noise is judged, never its loudness:

==================  ======================================================  =====================
measure             what                                                    passes when
==================  ======================================================  =====================
flatness            spectral flatness of the mean Welch PSD (nperseg 1024,  within 0.1 of the
                    geometric / arithmetic mean without DC; 1 = white)      target's
octave_deviation    per-octave level (63 Hz .. 8 kHz) minus the target's,   max |dev| <= 2 dB
                    both at the same total power (dB); max |dev| and rms
clip_correlation    mean |Pearson r| between different clips' waveforms     <= target's + 0.05
spectral_correlation  the same between their log periodograms               <= target's + 0.05
ks                  two-sample Kolmogorov-Smirnov distance of the pooled    <= 0.03
                    sample values
runs / cox_stuart   share of clips whose Wald-Wolfowitz runs test / Cox-    one-sided binomial
                    Stuart test rejects at alpha 0.05 (int16 PCM at         test against the
                    -20 dBFS), beside the target's                          target's rate: p >= 0.01
two_sample_auc      held-out AUC of a small fresh 1-D conv classifier       AUC <= 0.6
                    trained to tell generated from target clips, scoring
                    one 128 ms window per held-out clip (2-fold cross-
                    fitting, Mann-Whitney AUC, DeLong 95 % interval; the
                    whole-clip AUC is reported beside it)
==================  ======================================================  =====================

Why these thresholds (`Thresholds` holds them):

* flatness 0.1: for a log-normal ripple of the PSD, flatness = exp(-s^2/2) with s the
  ripple's standard deviation in nepers; 0.9 (a white target's 1.0 minus 0.1) is a ripple
  of about 2 dB, the same tolerance as the octave bands.
* octave deviation 2 dB: a masker's effect in a band moves dB for dB with its level there;
  2 dB is twice the ~1 dB just-noticeable level difference of broadband noise and a tenth
  of the study's 15-20 dB SNR range, so a band that far off changes what is compared.
* correlation + 0.05: r^2 is the share of one clip's energy that another clip explains;
  |r| = 0.05 leaves 0.25 % (-26 dB), far below anything that matters for masking, while a
  repeated clip (r = 1), a tone (|r| ~ 0.64) or a latent-ignoring generator (0.99) fail.
  Relative to the target's own value because that value depends on the clip length.
* KS 0.03: at equal variance a Gaussian differs from Student's t with 5 degrees of
  freedom by KS 0.038, from the uniform by 0.057, the Laplace by 0.062 and a sine's
  arcsine law by 0.097, while a Gaussian whose level varies uniformly by +-3 dB between
  clips differs by only 0.011: 0.03 accepts a Gaussian target's shape with some level
  spread, and no other common family.
* runs / Cox-Stuart: under the target's randomness the number of rejecting clips is
  binomial(N, rate), rate = max(target's rate, alpha); p < 0.01 means the generated clips
  fail the test more often than the target's randomness can explain.
* AUC 0.6: 0.5 is chance; with 64 clips a side (2 folds of 32 + 32 held out) the AUC of
  two samples of the same noise has a standard deviation of ~0.05, so 0.6 is two
  standard deviations (a ~2.5 % false fail rate) while a classifier that tells the two
  apart 60 % of the time is a clear difference. This is the strictest measure: measured
  on 64 + 64 white clips, a +-0.5 dB spectral tilt (octave deviation 0.5 dB) already gives
  a window AUC of 0.73 and +-1 dB one of 0.99; on whole clips +-0.5 dB gives 0.99. It is
  the paper's claim ("indistinguishable from the target") put to a test.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
from scipy import signal, stats

from maskgan_jax import audio

SAMPLE_RATE = 16000
# Octave bands (ANSI nominal centres) 63 Hz .. 8 kHz; 31.5 Hz is left out: at nperseg 1024
# (15.6 Hz bins) its band holds a single bin next to DC.
OCTAVE_CENTRES_HZ = (63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
NPERSEG = 1024
ALPHA = 0.05
# The level both sets are quantised at for the int16 randomness tests: -20 dBFS RMS.
PCM_RMS = 0.1


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Pass thresholds of the gate (see the module docstring for why)."""
    flatness_margin: float = 0.1        # |flatness - target's| <= this
    octave_max_db: float = 2.0          # max |octave deviation| <= this
    correlation_margin: float = 0.05    # mean |r| <= target's + this (waveforms and log spectra)
    ks_max: float = 0.03                # KS distance of the sample values <= this
    randomness_p: float = 0.01          # one-sided binomial p of the rejection count >= this
    auc_max: float = 0.6                # held-out two-sample AUC <= this


# ---------------------------------------------------------------------------- spectra


def _as_clips(x, name: str = "wave") -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 2:
        raise ValueError(f"{name}: expected clips [N, T] (or one wave [T]), got shape {np.shape(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: has NaN or infinite samples")
    return x


def welch_psd(wave_NxT, sample_rate: int = SAMPLE_RATE, nperseg: int = NPERSEG) -> tuple[np.ndarray, np.ndarray]:
    """Mean Welch PSD over clips, (freqs [F], psd [F]): scipy.signal.welch (Hann, 50 % overlap, density)."""
    x = _as_clips(wave_NxT)
    f, p = signal.welch(x, fs=sample_rate, nperseg=min(nperseg, x.shape[-1]), axis=-1)
    return f, p.mean(axis=0)


def spectral_flatness(psd) -> float:
    """Geometric over arithmetic mean of a power spectrum without its DC bin (1 = white)."""
    p = np.maximum(np.asarray(psd, np.float64)[1:], 1e-30)
    return float(np.exp(np.mean(np.log(p))) / np.mean(p))


def octave_band_powers(freqs, psd, centres=OCTAVE_CENTRES_HZ) -> list[dict]:
    """Mean PSD per octave band (edges centre/sqrt2 .. centre*sqrt2, capped at Nyquist); empty bands dropped."""
    freqs = np.asarray(freqs, np.float64)
    psd = np.asarray(psd, np.float64)
    nyq = freqs[-1]
    bands = []
    for c in centres:
        lo, hi = c / np.sqrt(2.0), min(c * np.sqrt(2.0), nyq)
        sel = (freqs >= lo) & (freqs < hi) if hi < nyq else (freqs >= lo) & (freqs <= hi)
        if lo < nyq and sel.any():
            bands.append({"centre_hz": float(c), "low_hz": float(lo), "high_hz": float(hi),
                          "power": float(np.mean(psd[sel]))})
    return bands


def match_level(wave_NxT, target_NxT) -> np.ndarray:
    """``wave`` scaled by one factor so that its overall RMS equals the target's (float64)."""
    w, t = _as_clips(wave_NxT), _as_clips(target_NxT, "target")
    return w * np.sqrt(np.mean(t ** 2) / max(np.mean(w ** 2), 1e-30))


def octave_deviation(wave_NxT, target_NxT, sample_rate: int = SAMPLE_RATE,
                     centres=OCTAVE_CENTRES_HZ) -> dict:
    """Per-octave PSD level of ``wave`` minus the target's (dB), both at the same total power."""
    w = match_level(wave_NxT, target_NxT)
    f, pw = welch_psd(w, sample_rate)
    _, pt = welch_psd(target_NxT, sample_rate)
    bands = []
    for bw, bt in zip(octave_band_powers(f, pw, centres), octave_band_powers(f, pt, centres)):
        bands.append({"centre_hz": bw["centre_hz"], "low_hz": bw["low_hz"], "high_hz": bw["high_hz"],
                      "deviation_db": float(10 * np.log10(max(bw["power"], 1e-30) / max(bt["power"], 1e-30)))})
    dev = np.array([b["deviation_db"] for b in bands])
    return {"octave_bands": bands, "max_abs_band_deviation_db": float(np.max(np.abs(dev))),
            "rms_band_deviation_db": float(np.sqrt(np.mean(dev ** 2))),
            "spectral_flatness": spectral_flatness(pw), "target_spectral_flatness": spectral_flatness(pt)}


def compare_to_target(wave_NxT, target_NxT, sample_rate: int = SAMPLE_RATE) -> dict:
    """Level (dBFS), spectral flatness and per-octave-band deviation (dB) of a noise from its target.

    The keys of `gan_generate`'s noise report: ``rms_dbfs`` is the noise's own level; the
    band deviations describe the spectral shape only (0 dB everywhere = the target's shape).
    """
    w = _as_clips(wave_NxT)
    return {"rms_dbfs": float(20 * np.log10(max(np.sqrt(np.mean(w ** 2)), 1e-12))),
            **octave_deviation(w, target_NxT, sample_rate)}


# ---------------------------------------------------------------------------- diversity, distribution


def mean_abs_correlation(rows_NxF) -> float:
    """Mean |Pearson r| over all pairs of different rows (NaN for fewer than 2 rows)."""
    x = np.asarray(rows_NxF, np.float64)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norm, 1e-30)
    c = x @ x.T
    iu = np.triu_indices(n, 1)
    return float(np.mean(np.abs(c[iu])))


def clip_correlation(wave_NxT) -> float:
    """Mean |Pearson r| between different clips' waveforms (~0.8/sqrt(T) for independent white noise)."""
    return mean_abs_correlation(_as_clips(wave_NxT))


def log_periodograms(wave_NxT) -> np.ndarray:
    """Per-clip log power spectra (natural log of |rfft|^2, DC dropped), [N, T//2]."""
    x = _as_clips(wave_NxT)
    p = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)[:, 1:]) ** 2
    return np.log(p + 1e-12 * max(float(p.max()), 1e-30))


def spectral_correlation(wave_NxT) -> float:
    """Mean |Pearson r| between different clips' log periodograms (shared fine spectral structure)."""
    return mean_abs_correlation(log_periodograms(wave_NxT))


def ks_distance(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov distance: the largest gap between the empirical CDFs of a and b."""
    a = np.sort(np.asarray(a, np.float64).ravel())
    b = np.sort(np.asarray(b, np.float64).ravel())
    if a.size == 0 or b.size == 0:
        raise ValueError("ks_distance needs two non-empty samples")
    v = np.concatenate([a, b])
    gap = np.searchsorted(a, v, side="right") / a.size - np.searchsorted(b, v, side="right") / b.size
    return float(np.max(np.abs(gap)))


def randomness_rates(wave_NxT, alpha: float = ALPHA) -> dict:
    """Share of clips whose runs (Wald-Wolfowitz, median cutoff) / Cox-Stuart test rejects at ``alpha``."""
    import kernels
    x = _as_clips(wave_NxT)
    s = kernels.score_clips(audio.float_to_int16(x)[0])
    ww, cs = np.asarray(s["ww_p"]) < alpha, np.asarray(s["cs_p"]) < alpha
    return {"runs": float(ww.mean()), "cox_stuart": float(cs.mean()),
            "runs_count": int(ww.sum()), "cox_stuart_count": int(cs.sum()), "clips": int(x.shape[0])}


def _pcm_level(wave_NxT, target_NxT) -> tuple[np.ndarray, np.ndarray]:
    t = _as_clips(target_NxT, "target")
    k = PCM_RMS / max(float(np.sqrt(np.mean(t ** 2))), 1e-30)
    return match_level(wave_NxT, t) * k, t * k


# ---------------------------------------------------------------------------- AUC


def auc(scores_pos, scores_neg) -> float:
    """Area under the ROC curve, P(pos > neg) + P(tie)/2, from the Mann-Whitney U statistic."""
    p = np.asarray(scores_pos, np.float64).ravel()
    n = np.asarray(scores_neg, np.float64).ravel()
    if p.size == 0 or n.size == 0:
        raise ValueError("auc needs at least one positive and one negative score")
    ranks = stats.rankdata(np.concatenate([p, n]))  # average ranks: ties count one half
    u = ranks[:p.size].sum() - p.size * (p.size + 1) / 2.0
    return float(u / (p.size * n.size))


def delong_variance(scores_pos, scores_neg) -> float:
    """DeLong's (1988) variance estimate of the empirical AUC (structural components from midranks)."""
    p = np.asarray(scores_pos, np.float64).ravel()
    n = np.asarray(scores_neg, np.float64).ravel()
    m, k = p.size, n.size
    if m < 2 or k < 2:
        return float("nan")
    all_r = stats.rankdata(np.concatenate([p, n]))
    # V10_i: share of negatives below positive i (ties 1/2); V01_j: share of positives above negative j.
    v10 = (all_r[:m] - stats.rankdata(p)) / k
    v01 = 1.0 - (all_r[m:] - stats.rankdata(n)) / m
    return float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / k)


def auc_interval(aucs, variances, level: float = 0.95) -> tuple[float, float]:
    """Normal interval of the mean of independent AUC estimates, clipped to [0, 1]."""
    a = float(np.mean(aucs))
    se = math.sqrt(float(np.sum(variances))) / len(aucs)
    z = stats.norm.ppf(0.5 + level / 2.0)
    return max(0.0, a - z * se), min(1.0, a + z * se)


# ---------------------------------------------------------------------------- classifier two-sample test


def _classifier():
    import flax.linen as nn
    import jax.numpy as jnp

    from maskgan_jax.models import layers

    class TwoSampleCritic(nn.Module):
        """A small 1-D conv classifier: waveform [B, L] -> logit [B]; mean/std pooling makes it length-free."""
        channels: tuple = (16, 32, 32)
        kernels: tuple = (16, 8, 8)

        @nn.compact
        def __call__(self, x_BxL):
            x = x_BxL[..., None]
            for i, (c, k) in enumerate(zip(self.channels, self.kernels)):
                # The im2col form: XLA CPU's own convolution gradients were ~40x slower here.
                x = layers.ConvStrided1D(c, k, 4, impl="matmul", name=f"conv_{i}")(x)
                x = nn.leaky_relu(x, 0.2)
            feats = jnp.concatenate([jnp.mean(x, axis=1), jnp.log(jnp.std(x, axis=1) + 1e-6)], axis=-1)
            return nn.Dense(1, name="logit")(feats)[:, 0]

    return TwoSampleCritic


@functools.lru_cache(maxsize=8)
def _c2st_program(n_pos: int, n_neg: int, length: int, crop: int, batch: int, steps: int, lr: float):
    """The jitted (key, pos, neg, test_pos, test_neg) -> scores of one fold: one random ``crop`` window
    of each test clip (pos, neg), then the whole test clips (pos, neg)."""
    import jax
    import jax.numpy as jnp
    import optax

    net = _classifier()()
    opt = optax.adam(lr)

    def crops(key, x, n):
        k_i, k_s = jax.random.split(key)
        rows = jax.random.randint(k_i, (n,), 0, x.shape[0])
        starts = jax.random.randint(k_s, (n,), 0, length - crop + 1)
        return jax.vmap(lambda r, s: jax.lax.dynamic_slice_in_dim(x[r], s, crop))(rows, starts)

    def run(key, pos, neg, test_pos, test_neg):
        k_init, k_train, k_eval = jax.random.split(key, 3)
        params = net.init(k_init, jnp.zeros((1, crop)))["params"]
        labels = jnp.concatenate([jnp.ones(batch), jnp.zeros(batch)])

        def loss_fn(p, x):
            logits = net.apply({"params": p}, x)
            return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))

        def step(carry, k):
            p, s = carry
            k_p, k_n = jax.random.split(k)
            x = jnp.concatenate([crops(k_p, pos, batch), crops(k_n, neg, batch)])
            g = jax.grad(loss_fn)(p, x)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(k_train, steps))
        score = lambda x: net.apply({"params": params}, x)  # noqa: E731

        def window(k, x):  # one window per clip: independent held-out scores
            starts = jax.random.randint(k, (x.shape[0],), 0, length - crop + 1)
            return jax.vmap(lambda r, s: jax.lax.dynamic_slice_in_dim(r, s, crop))(x, starts)

        k_p, k_n = jax.random.split(k_eval)
        return (score(window(k_p, test_pos)), score(window(k_n, test_neg)), score(test_pos), score(test_neg))

    return jax.jit(run)


def two_sample_auc(generated_NxT, target_NxT, seed: int = 0, folds: int = 2, crop: int = 2048,
                   batch: int = 32, steps: int = 150, learning_rate: float = 2e-3) -> dict:
    """Classifier two-sample test: held-out AUC (generated = positive) of a fresh conv classifier.

    Clips are split into ``folds`` folds (both sets); per fold a classifier is trained on
    random ``crop``-sample windows (default 128 ms) of the other folds' clips and scores one
    random window of each of the fold's clips. ``auc`` is the mean of the folds' AUCs, with a
    95 % DeLong interval (folds independent). Scored on windows, the classifier's tolerance
    matches the other measures' (a +-0.5 dB spectral tilt is near chance); ``clip_auc``, the
    same classifier on whole clips, is far stricter (it sees a +-0.25 dB tilt) and is reported
    beside it. Both sets are brought to the same level first (the target's overall RMS, scaled to 1).
    """
    import jax
    import jax.numpy as jnp
    g = match_level(generated_NxT, target_NxT)
    t = _as_clips(target_NxT, "target")
    if g.shape[1] != t.shape[1]:
        raise ValueError(f"two_sample_auc: clip lengths differ ({g.shape[1]} vs {t.shape[1]})")
    if min(g.shape[0], t.shape[0]) < 2 * folds:
        raise ValueError(f"two_sample_auc: needs at least {2 * folds} clips per side for {folds} folds")
    scale = 1.0 / max(float(np.sqrt(np.mean(t ** 2))), 1e-30)
    g, t = (g * scale).astype(np.float32), (t * scale).astype(np.float32)
    length = g.shape[1]
    crop = min(crop, length)
    rng = np.random.default_rng(seed)
    fold_g = np.array_split(rng.permutation(g.shape[0]), folds)
    fold_t = np.array_split(rng.permutation(t.shape[0]), folds)
    aucs, variances, clip_aucs, clip_vars = [], [], [], []
    for f in range(folds):
        tr_g = np.concatenate([fold_g[i] for i in range(folds) if i != f])
        tr_t = np.concatenate([fold_t[i] for i in range(folds) if i != f])
        prog = _c2st_program(len(tr_g), len(tr_t), length, crop, batch, steps, float(learning_rate))
        out = prog(jax.random.fold_in(jax.random.key(seed), f), jnp.asarray(g[tr_g]), jnp.asarray(t[tr_t]),
                   jnp.asarray(g[fold_g[f]]), jnp.asarray(t[fold_t[f]]))
        wp, wn, cp, cn = (np.asarray(o, np.float64) for o in out)
        aucs.append(auc(wp, wn))
        variances.append(delong_variance(wp, wn))
        clip_aucs.append(auc(cp, cn))
        clip_vars.append(delong_variance(cp, cn))
    lo, hi = auc_interval(aucs, variances)
    clo, chi = auc_interval(clip_aucs, clip_vars)
    return {"auc": float(np.mean(aucs)), "ci95": [lo, hi], "fold_aucs": aucs, "folds": folds,
            "clip_auc": float(np.mean(clip_aucs)), "clip_ci95": [clo, chi],
            "clips": [int(g.shape[0]), int(t.shape[0])], "crop": crop, "steps": steps}


# ---------------------------------------------------------------------------- the gate


def quick_measures(generated_NxT, target_NxT, sample_rate: int = SAMPLE_RATE) -> dict:
    """The cheap measures (no classifier, no randomness tests) for logging during training; flat dict."""
    g = _as_clips(generated_NxT, "generated")
    t = _as_clips(target_NxT, "target")
    oct_ = octave_deviation(g, t, sample_rate)
    return {"flatness": oct_["spectral_flatness"], "target_flatness": oct_["target_spectral_flatness"],
            "octave_max_db": oct_["max_abs_band_deviation_db"], "octave_rms_db": oct_["rms_band_deviation_db"],
            "clip_corr": clip_correlation(g), "target_clip_corr": clip_correlation(t),
            "spectral_corr": spectral_correlation(g), "target_spectral_corr": spectral_correlation(t),
            "ks": ks_distance(match_level(g, t), t)}


# How much a quick measure may get worse between two checkpoints before training warns (the
# changes of a 16-clip estimate between draws of the same noise stay well inside these).
WORSEN_TOLERANCE = {"flatness": -0.05, "octave_max_db": 1.0, "clip_corr": 0.02, "spectral_corr": 0.02, "ks": 0.01}


def format_quick(q: dict) -> str:
    """One line of `quick_measures` figures, each beside the target's own."""
    return (f"flatness {q['flatness']:.3f} (target {q['target_flatness']:.3f}), octave dev max "
            f"{q['octave_max_db']:.2f} dB, clip corr {q['clip_corr']:.3f} (target {q['target_clip_corr']:.3f}), "
            f"spectral corr {q['spectral_corr']:.3f} (target {q['target_spectral_corr']:.3f}), KS {q['ks']:.3f}")


def worsened(previous: dict | None, current: dict) -> list[str]:
    """Messages for quick measures that got worse than ``previous`` by more than `WORSEN_TOLERANCE`."""
    if not previous:
        return []
    out = []
    for k, tol in WORSEN_TOLERANCE.items():
        if k not in previous or k not in current:
            continue
        change = current[k] - previous[k]
        if (change > tol) if tol > 0 else (change < tol):
            out.append(f"{k} worsened from {previous[k]:.4g} to {current[k]:.4g}")
    return out


def _measure(value, target, threshold, passed, **detail) -> dict:
    return {"value": value, "target": target, "threshold": threshold, "pass": bool(passed), **detail}


def gate(generated_NxT, target_NxT, sample_rate: int = SAMPLE_RATE, seed: int = 0,
         thresholds: Thresholds = Thresholds(), classifier: bool = True, classifier_options: dict | None = None,
         ) -> dict:
    """Every quality measure of generated noise against its target, each with its threshold and verdict.

    Returns a JSON-able dict: ``passed`` (all measures pass), ``measures`` (name -> value,
    target, threshold, pass and details), ``thresholds`` and the clip counts. ``classifier``
    False skips the two-sample classifier (the cheapest full check).
    """
    g = _as_clips(generated_NxT, "generated")
    t = _as_clips(target_NxT, "target")
    th = thresholds
    m: dict[str, Any] = {}
    q = quick_measures(g, t, sample_rate)
    oct_ = octave_deviation(g, t, sample_rate)
    m["flatness"] = _measure(q["flatness"], q["target_flatness"], th.flatness_margin,
                             abs(q["flatness"] - q["target_flatness"]) <= th.flatness_margin,
                             rule="|value - target| <= threshold")
    m["octave_deviation"] = _measure(q["octave_max_db"], 0.0, th.octave_max_db, q["octave_max_db"] <= th.octave_max_db,
                                     rule="max |band dev| (dB) <= threshold", rms_db=q["octave_rms_db"],
                                     bands=oct_["octave_bands"])
    for name, key in (("clip_correlation", "clip_corr"), ("spectral_correlation", "spectral_corr")):
        m[name] = _measure(q[key], q["target_" + key], th.correlation_margin,
                           q[key] <= q["target_" + key] + th.correlation_margin,
                           rule="value <= target + threshold")
    m["ks"] = _measure(q["ks"], 0.0, th.ks_max, q["ks"] <= th.ks_max, rule="value <= threshold")
    pg, pt = _pcm_level(g, t)
    rg, rt = randomness_rates(pg), randomness_rates(pt)
    for test in ("runs", "cox_stuart"):
        null = max(rt[test], ALPHA)
        p = float(stats.binomtest(rg[test + "_count"], rg["clips"], null, alternative="greater").pvalue)
        m[test] = _measure(rg[test], rt[test], th.randomness_p, p >= th.randomness_p, binomial_p=p,
                           rule="one-sided binomial p of the rejection count at max(target, alpha) >= threshold")
    if classifier:
        c = two_sample_auc(g, t, seed=seed, **(classifier_options or {}))
        m["two_sample_auc"] = _measure(c["auc"], 0.5, th.auc_max, c["auc"] <= th.auc_max, ci95=c["ci95"],
                                       fold_aucs=c["fold_aucs"], rule="value (one window per clip) <= threshold",
                                       **{k: c[k] for k in ("clip_auc", "clip_ci95", "folds", "crop", "steps")})
    return {"passed": all(v["pass"] for v in m.values()), "measures": m,
            "failed": [k for k, v in m.items() if not v["pass"]],
            "clips": [int(g.shape[0]), int(t.shape[0])], "samples": int(g.shape[1]),
            "thresholds": dataclasses.asdict(th), "classifier": bool(classifier)}


def format_gate(report: dict) -> str:
    """One line per measure: value beside the target's, the threshold and PASS/FAIL."""
    lines = [f"noise-quality gate: {'PASSED' if report['passed'] else 'FAILED'} "
             f"({report['clips'][0]} generated vs {report['clips'][1]} target clips)"]
    for name, v in report["measures"].items():
        extra = f" ci95 [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]" if "ci95" in v else ""
        extra += f" (whole clips: {v['clip_auc']:.3f})" if "clip_auc" in v else ""
        extra += f" binomial p {v['binomial_p']:.3g}" if "binomial_p" in v else ""
        lines.append(f"  {name:22s} {v['value']:.4g} (target {v['target']:.4g}; threshold {v['threshold']:g})"
                     f"{extra} {'pass' if v['pass'] else 'FAIL'}")
    return "\n".join(lines)
