"""A universal masker trained against the attackers: a learned spectral shape over white noise.

The masker is not conditioned on the speech: the device plays it without listening. It is
Gaussian white noise filtered in the frequency domain by a learned gain, one log-gain per
mel-spaced band (``bands``, linearly interpolated between band centres over the clip's FFT
bins, DC removed), brought to unit RMS per clip. At zero log-gains it *is* white noise, so
training starts from the baseline it must beat. Why this form: it has a few dozen parameters
and costs one FFT per clip, so it trains in minutes on two CPU cores; its output stays a
Gaussian process (nothing for an adaptive attacker to learn beyond its spectrum); and its
power is exact by construction.

The level is set by construction, never by a penalty: the noise is normalised to unit RMS
and mixed by `masking.mix` at SNR = speech SPL - noise SPL (15 dB for 60 dB speech and a
45 dB SPL masker), the recording model of `levels`; the masker can only move power between
frequencies, never add any.

Training (`train`) alternates, round after round:

* the attackers learn on masked audio (fresh noise, random crops, so random alignment of
  noise and speech): the probe (a linear readout of the log-mel statistics of
  `features.log_mel_statistics`, the probe attacker's features) and a small CNN
  (`models.attackers`) on every private-task attribute, and the command recogniser (a small
  CNN) on masked commands;
* the masker takes a step that pushes every attacker of the ensemble (the current ones and a
  pool of ``pool_size`` past snapshots) towards uniform predictions (cross-entropy to the
  uniform distribution) while keeping the recogniser's loss low (``utility_weight``).

Jitted steps, data-parallel over `parallel.make_mesh` (the batch sharded, parameters
replicated). The workdir holds ``config.json``, ``masker.npz`` (the log-gains) and
``metrics.jsonl``; ``masker:DIR`` loads it (`load_source`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from maskgan_jax import features, levels, noise, parallel, results
from maskgan_jax.models import attackers
from maskgan_jax.vocab import INT16_SCALE, SAMPLE_RATE, UTILITY_TASK

CONFIG_FILE = "config.json"
PARAMS_FILE = "masker.npz"
METRICS_FILE = "metrics.jsonl"


@dataclasses.dataclass(frozen=True)
class MaskerConfig:
    """Everything a masker training run needs (written to ``config.json``)."""
    tasks: tuple = ("udi",)              # private tasks whose attackers it confuses
    utility_task: str = UTILITY_TASK     # commands must survive ('' for none)
    data_size: str = "default"           # embedded corpora
    data_seed: int = 0
    bands: int = 48                      # learned log-gains over mel-spaced bands
    noise_spl: float = 45.0
    speech_spl: float = 60.0
    crop: int = 16384                    # training crops (random offsets)
    batch_size: int = 32
    rounds: int = 180                    # alternating rounds (attackers, then masker)
    warmup_rounds: int = 20              # attackers only, on white noise, before the masker moves
    masker_lr: float = 0.03
    attacker_lr: float = 2e-3
    pool_size: int = 4                   # past attacker snapshots in the masker's ensemble
    snapshot_every: int = 30
    utility_weight: float = 1.0
    cnn_channels: tuple = (16, 32)
    n_mels: int = 64
    n_fft: int = 512
    hop_length: int = 256
    seed: int = 0
    num_devices: int | None = None

    def validate(self) -> "MaskerConfig":
        """Raises ValueError naming the bad field."""
        if not self.tasks:
            raise ValueError("tasks: at least one private task")
        if self.noise_spl > levels.COMFORT_LIMIT_SPL:
            raise ValueError(f"noise_spl={self.noise_spl:g}: a masker plays at most "
                             f"{levels.COMFORT_LIMIT_SPL:g} dB SPL")
        if self.bands < 2 or self.crop < self.n_fft or self.batch_size < 1 or self.rounds < 1:
            raise ValueError("bands >= 2, crop >= n_fft, batch_size and rounds >= 1 are required")
        if self.pool_size < 0 or self.snapshot_every < 1 or self.warmup_rounds < 0:
            raise ValueError("pool_size >= 0, snapshot_every >= 1 and warmup_rounds >= 0 are required")
        return self

    @property
    def snr_db(self) -> float:
        return float(self.speech_spl - self.noise_spl)

    def to_json(self) -> dict:
        return json.loads(results.dumps(dataclasses.asdict(self)))


def read_config(workdir: str) -> MaskerConfig:
    """The config a masker workdir was trained with."""
    with open(os.path.join(workdir, CONFIG_FILE)) as f:
        d = json.load(f)
    fields = {f.name for f in dataclasses.fields(MaskerConfig)}
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields}
    return MaskerConfig(**d)


# ----------------------------------------------------------------------------- the noise

def band_matrix(bands: int, length: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[length//2 + 1, bands] linear interpolation weights from band centres (mel-spaced from 0 Hz
    to Nyquist) to a clip's rFFT bins; each row sums to one."""
    centres = features.mel_to_hz(np.linspace(features.hz_to_mel(0.0), features.hz_to_mel(sample_rate / 2), bands))
    f = np.fft.rfftfreq(length, 1.0 / sample_rate)
    w = np.zeros((f.size, bands), np.float32)
    j = np.clip(np.searchsorted(centres, f, side="right") - 1, 0, bands - 2)
    t = np.clip((f - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0)
    w[np.arange(f.size), j] = 1.0 - t
    w[np.arange(f.size), j + 1] += t
    return w


def bin_gain(log_gain_K: jax.Array, matrix_FxK: jax.Array) -> jax.Array:
    """Amplitude gain per rFFT bin: exp of the interpolated log-gains, DC zero."""
    g = jnp.exp(matrix_FxK @ log_gain_K)
    return g.at[0].set(0.0)


def noise_batch(log_gain_K, matrix_FxK, keys_B, length: int) -> jax.Array:
    """[B, length] masker noise, one clip per key."""
    g = bin_gain(log_gain_K, matrix_FxK)
    return jax.vmap(lambda k: noise.filtered_gaussian(g, k, length))(keys_B)


def load_params(workdir: str) -> np.ndarray:
    with np.load(os.path.join(workdir, PARAMS_FILE)) as z:
        return np.asarray(z["log_gain"], np.float32)


def load_source(workdir: str, length: int) -> tuple[Callable, tuple, dict]:
    """(fn(arrays, keys_B) -> [B, length], arrays, info) of a trained masker (`masking` source)."""
    if not os.path.isfile(os.path.join(workdir, PARAMS_FILE)):
        raise ValueError(f"--noise=masker:{workdir}: no trained masker there ({PARAMS_FILE} missing)")
    cfg = read_config(workdir)
    log_gain = load_params(workdir)
    gain = jnp.asarray(np.asarray(bin_gain(jnp.asarray(log_gain), jnp.asarray(band_matrix(cfg.bands, length)))))

    def fn(arrays, keys_B):
        (g,) = arrays
        return jax.vmap(lambda k: noise.filtered_gaussian(g, k, length))(keys_B)

    info = {"kind": "masker", "workdir": workdir, "bands": cfg.bands, "identity": identity(workdir)}
    return fn, (gain,), info


def identity(workdir: str) -> str:
    """A fingerprint of what the masker plays (its config and learned gains), not of its path."""
    return results.fingerprint({"config": read_config(workdir).to_json(),
                                "log_gain": np.round(load_params(workdir).astype(np.float64), 6).tolist()})


# ----------------------------------------------------------------------------- attackers

def _heads(store) -> tuple:
    return tuple((a, len(store.classes[a])) for a in store.classes)


def log_mel(cfg: MaskerConfig, wave_BxT):
    return features.log_mel_spectrogram(wave_BxT, SAMPLE_RATE, cfg.n_fft, cfg.hop_length, cfg.n_mels)


def _probe_init(key, heads, n_feat):
    return {a: {"w": jax.random.normal(jax.random.fold_in(key, i), (n_feat, n)) * 0.01, "b": jnp.zeros(n)}
            for i, (a, n) in enumerate(heads)}


def log_mel_statistics(mel_BxMxF):
    """`features.log_mel_statistics` with a square root whose gradient stays finite on a constant band
    (a band the floor flattens): sqrt(var + 1e-6 dB^2), which differs from the std by < 1e-3 dB."""
    mel = features.floor_db(mel_BxMxF, attackers.TOP_DB)
    delta = jnp.diff(mel, axis=2)

    def std(x):
        return jnp.sqrt(jnp.var(x, axis=2) + 1e-6)

    level = jnp.mean(mel, axis=(1, 2))[:, None]
    return jnp.concatenate([jnp.mean(mel, axis=2), std(mel), jnp.mean(delta, axis=2), std(delta), level], axis=1)


def _probe_apply(p, mel):
    x = log_mel_statistics(mel) / attackers.STATS_SCALE
    return {a: x @ h["w"] + h["b"] for a, h in p.items()}


def _ce(logits: dict, labels: dict, weight_B) -> jax.Array:
    """Mean cross-entropy over heads (unlabelled rows, -1, and padding left out)."""
    total = 0.0
    for a, lg in logits.items():
        y = labels[a]
        w = weight_B * (y >= 0)
        ll = optax.softmax_cross_entropy_with_integer_labels(lg, jnp.maximum(y, 0))
        total = total + jnp.sum(ll * w) / jnp.maximum(jnp.sum(w), 1.0)
    return total / len(logits)


def _to_uniform(logits: dict, weight_B) -> jax.Array:
    """Mean cross-entropy of the predictions against the uniform distribution (its minimum,
    log K per head, is reached by uniform predictions), minus that minimum."""
    total = 0.0
    for lg in logits.values():
        ce = -jnp.mean(jax.nn.log_softmax(lg, axis=-1), axis=-1) - jnp.log(lg.shape[-1])
        total = total + jnp.sum(ce * weight_B) / jnp.maximum(jnp.sum(weight_B), 1.0)
    return total / len(logits)


def _mixed(cfg, log_gain, matrix, key, clean_BxT):
    keys_B = jax.random.split(key, clean_BxT.shape[0])
    noise_BxT = noise_batch(log_gain, matrix, keys_B, clean_BxT.shape[1])
    mixed, _ = levels.mix_at_snr_jax(clean_BxT, noise_BxT, cfg.snr_db)
    return mixed


def make_steps(cfg: MaskerConfig, task_heads: dict, mesh):
    """(attacker step, masker step, init) jitted for a config and the tasks' heads, and the attackers' and
    the masker's optimisers. Batches are sharded over ``mesh``; parameters stay replicated."""
    cnn_cfg = attackers.AttackerConfig(model="cnn", channels=tuple(cfg.cnn_channels))
    nets = {t: attackers.build(cnn_cfg, h) for t, h in task_heads.items()}
    matrix = jnp.asarray(band_matrix(cfg.bands, cfg.crop))
    att_opt = optax.adam(cfg.attacker_lr)
    rep = parallel.replicated_sharding(mesh)

    def task_logits(t, p, mel):
        """{"probe": logits, "cnn": logits} of one task's attackers (the recogniser's too)."""
        return {"probe": _probe_apply(p["probe"], mel), "cnn": nets[t].apply(p["cnn"], mel)}

    def attacker_loss(p, batches, log_gain, key):
        loss, per = 0.0, {}
        for i, (t, b) in enumerate(sorted(batches.items())):
            mel = log_mel(cfg, _mixed(cfg, log_gain, matrix, jax.random.fold_in(key, i), b["audio"]))
            lg = task_logits(t, p[t], mel)
            l_t = sum(_ce(v, b["labels"], b["weight"]) for v in lg.values())
            per[t] = l_t
            loss = loss + l_t
        return loss, per

    def attacker_step(p, opt_state, batches, log_gain, key):
        (_, per), g = jax.value_and_grad(attacker_loss, has_aux=True)(p, batches, log_gain, key)
        upd, opt_state = att_opt.update(g, opt_state, p)
        return optax.apply_updates(p, upd), opt_state, per

    def masker_loss(log_gain, ensemble, batches, key):
        conf, util = 0.0, 0.0
        for i, (t, b) in enumerate(sorted(batches.items())):
            mel = log_mel(cfg, _mixed(cfg, log_gain, matrix, jax.random.fold_in(key, i), b["audio"]))
            if t == "__utility__":
                lg = task_logits(t, ensemble[t], mel)
                util = util + sum(_ce(v, b["labels"], b["weight"]) for v in lg.values())
                continue
            members = ensemble[t]          # stacked over the pool's leading axis
            per = jax.vmap(lambda p: sum(_to_uniform(v, b["weight"]) for v in task_logits(t, p, mel).values()))(members)
            conf = conf + jnp.mean(per)
        return conf + cfg.utility_weight * util, {"confusion": conf, "utility": util}

    m_opt = optax.adam(cfg.masker_lr)

    def masker_step(log_gain, m_state, ensemble, batches, key):
        (_, aux), g = jax.value_and_grad(masker_loss, has_aux=True)(log_gain, ensemble, batches, key)
        upd, m_state = m_opt.update(g, m_state, log_gain)
        return optax.apply_updates(log_gain, upd), m_state, aux

    def init(key, batches):
        p = {}
        for i, (t, b) in enumerate(sorted(batches.items())):
            mel = log_mel(cfg, b["audio"])
            k = jax.random.fold_in(key, i)
            p[t] = {"probe": _probe_init(k, task_heads[t], mel.shape[1] * 4 + 1),
                    "cnn": nets[t].init(jax.random.fold_in(k, 1), mel)}
        return p

    return (jax.jit(attacker_step, out_shardings=(rep, rep, rep)), jax.jit(masker_step),
            jax.jit(init), att_opt, m_opt)


# ----------------------------------------------------------------------------- data

def _open(task: str, cfg: MaskerConfig, cache_dir: str | None, log):
    from maskgan_jax.data import cache
    return cache.open_task_store(task, None, cache_dir, cfg.data_size, cfg.data_seed, progress=False, log=log)


def _train_rows(store) -> np.ndarray:
    splits = np.asarray(list(store.splits), dtype=str)
    rows = np.flatnonzero(splits == "train")
    return rows if rows.size else np.arange(len(splits))


def _speech_starts(clip_T: np.ndarray, crop: int, hop: int = 256, share: float = 0.25) -> np.ndarray:
    """Crop offsets (multiples of ``hop``) whose crop holds at least ``share`` of the clip's mean power."""
    n = clip_T.size // hop
    block = np.mean(np.square(clip_T[:n * hop].reshape(n, hop), dtype=np.float64), axis=1)
    k = crop // hop
    if n < k or block.sum() <= 0:
        return np.zeros(0, np.int64)
    crop_power = np.convolve(block, np.ones(k) / k, mode="valid")
    return np.flatnonzero(crop_power >= share * block.mean()) * hop


class _Sampler:
    """Random crops of a store's training rows with their labels (numpy generator, seeded)."""

    def __init__(self, store, crop: int, rng: np.random.Generator):
        rows = np.sort(_train_rows(store))
        audio = np.asarray(store.audio[rows], np.float32) / np.float32(INT16_SCALE)
        starts = [_speech_starts(x, crop) for x in audio]
        keep = np.asarray([st.size > 0 for st in starts])   # silent clips have nothing to mask
        if not keep.any():
            raise ValueError("masker: every training clip is silent")
        self.audio = audio[keep]
        self.starts = [st for st, k in zip(starts, keep) if k]
        self.labels = {a: np.asarray(store.labels[a])[rows[keep]].astype(np.int32) for a in store.classes}
        self.crop, self.rng = crop, rng

    def batch(self, n: int) -> dict:
        """n crops at random offsets among those holding speech (`_speech_starts`): a crop of the
        silence around a short word would carry no noise either (the mix scales it to the speech)."""
        i = self.rng.integers(0, self.audio.shape[0], n)
        s = [self.starts[a][self.rng.integers(0, self.starts[a].size)] for a in i]
        audio = np.stack([self.audio[a, b:b + self.crop] for a, b in zip(i, s)])
        return {"audio": audio, "labels": {k: v[i] for k, v in self.labels.items()},
                "weight": np.ones(n, np.float32)}


# ----------------------------------------------------------------------------- training

def train(cfg: MaskerConfig, workdir: str, cache_dir: str | None = None, log: Callable[[str], None] = print,
          stores: dict | None = None) -> dict:
    """Trains a masker into ``workdir`` (config.json, masker.npz, metrics.jsonl); returns the last metrics.
    ``stores`` ({task: store or ArrayData}) replaces the embedded corpora of ``cfg.tasks`` and
    ``cfg.utility_task``."""
    cfg = cfg.validate()
    os.makedirs(workdir, exist_ok=True)
    mesh = parallel.make_mesh(cfg.num_devices)
    parallel.check_batch_size(cfg.batch_size, mesh, "batch_size")
    rng = np.random.default_rng([cfg.seed, 0x6d6b])
    given = dict(stores or {})
    stores = {t: given[t] if t in given else _open(t, cfg, cache_dir, log) for t in cfg.tasks}
    if cfg.utility_task:
        u = cfg.utility_task
        stores["__utility__"] = given[u] if u in given else _open(u, cfg, cache_dir, log)
    samplers = {t: _Sampler(s, cfg.crop, rng) for t, s in stores.items()}
    task_heads = {t: _heads(s) for t, s in stores.items()}
    attacker_step, masker_step, init, att_opt, m_opt = make_steps(cfg, task_heads, mesh)
    key = jax.random.key(cfg.seed)

    def batches():
        return {t: parallel.shard_batch(s.batch(cfg.batch_size), mesh) for t, s in samplers.items()}

    params = init(jax.random.fold_in(key, 0), batches())
    a_state = att_opt.init(params)
    log_gain = jnp.zeros(cfg.bands, jnp.float32)
    m_state = m_opt.init(log_gain)
    private = [t for t in stores if t != "__utility__"]
    pool = {t: [params[t]] * max(cfg.pool_size, 1) for t in private}
    metrics_path = os.path.join(workdir, METRICS_FILE)
    history, t0 = [], time.perf_counter()
    with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
        json.dump(cfg.to_json(), f, indent=1)
    for r in range(cfg.rounds + cfg.warmup_rounds):
        k = jax.random.fold_in(key, 1 + r)
        params, a_state, a_loss = attacker_step(params, a_state, batches(), log_gain, jax.random.fold_in(k, 0))
        if r < cfg.warmup_rounds:
            continue
        if (r - cfg.warmup_rounds) % cfg.snapshot_every == 0 and cfg.pool_size:
            for t in private:
                pool[t] = pool[t][1:] + [params[t]]
        ensemble = {t: jax.tree_util.tree_map(lambda *x: jnp.stack(x), params[t], *pool[t]) for t in private}
        if "__utility__" in params:
            ensemble["__utility__"] = params["__utility__"]
        log_gain, m_state, aux = masker_step(log_gain, m_state, ensemble, batches(), jax.random.fold_in(k, 1))
        if (r + 1) % 10 == 0 or r + 1 == cfg.rounds + cfg.warmup_rounds:
            rec = {"round": r + 1, "seconds": time.perf_counter() - t0,
                   "attacker_loss": {t: float(v) for t, v in a_loss.items()},
                   "confusion": float(aux["confusion"]), "utility_loss": float(aux["utility"]),
                   "gain_db_range": float(20 / np.log(10) * (jnp.max(log_gain) - jnp.min(log_gain)))}
            history.append(rec)
            log(f"[masker] round {r + 1}: attackers {rec['attacker_loss']}, confusion {rec['confusion']:.4f}, "
                f"recogniser {rec['utility_loss']:.4f}, gain range {rec['gain_db_range']:.1f} dB, "
                f"{rec['seconds']:.0f} s")
    np.savez(os.path.join(workdir, PARAMS_FILE), log_gain=np.asarray(log_gain, np.float32))
    results.write_jsonl_atomic(metrics_path, history)
    return history[-1] if history else {}
