"""The room channel: talker, masking loudspeaker, the attacker's microphone and a listener in a shoebox.

Rooms. ``build_rir_bank(config, seed, n_rooms)`` draws ``n_rooms`` shoebox rooms from
``RoomConfig``'s documented ranges and simulates them once with pyroomacoustics (host side,
``room_sim``); the bank is cached as an ``.npz`` file (read with ``allow_pickle=False``).
Each room has four responses (``PATHS``): talker->microphone, talker->listener,
masker->microphone and masker->listener, float32 ``[rir_length]`` each.

A fresh room per example: ``room_index(key_B, n_rooms)`` picks each example's room from
the example's own key (the key that also draws its noise, folded with a fixed stream
number so the two draws are independent), so an example's room depends neither on the
batch it lands in nor on the device count. ``select(paths, index_B)`` gathers the responses,
or their spectra: ``bank.spectra(T)`` (a ``PathSpectra``) computes them once for clips of
T samples and spares ``room_mix`` four of its ten FFTs.

Calibration (the levels where they are heard):

* responses are scaled so that the free-field direct path at 1 m has unity gain (unit
  energy; pyroomacoustics 0.10 gives image sources an amplitude 1/r, older releases
  1/(4 pi r): ``room_sim.free_field_scale`` measures it), so a dry signal is the
  free-field signal 1 m from its source, and the direct path at r metres has gain 1/r;
* signals at the listener are in the playback calibration of ``levels`` (an RMS of
  0 dBFS is ``fullscale_spl`` dB SPL, default 90);
* the talker's speech is at ``speech_spl`` (60 dB SPL) 1 m from the talker: the clean clip
  is scaled to that level and convolved with talker->listener and talker->microphone;
* the masker's level (``noise_spl``, at most the 45 dB SPL comfort limit) is defined at the
  listener: the noise is scaled so that its reverberant signal at the listener
  (noise * masker->listener) has that RMS level;
* the microphone hears speech * talker->mic + noise * masker->mic; its gain control scales
  that mix by one gain so that its speech component has the clean clip's recorded RMS,
  then clips to [-1, 1] (as in the digital model, speech keeps its recorded level). A
  silent clip leaves the gain control nothing to hold: its gain is 1 (playback units).

Filtering is causal: ``fft_convolve`` returns the first T samples of the full convolution.
Every response starts with pyroomacoustics' 40-sample filter delay plus the propagation
delay, so the listener's and microphone's signals lag the clean clip by those samples
(and the clip's last samples' reverberation is cut). Everything on device is a pure
jittable function of arrays; the levels are concrete numbers (the comfort limit is
checked on the host, as in ``levels.mix_at_spl_jax``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pyroomacoustics as pra
from absl import logging

from maskgan_jax import host_workers, levels
from maskgan_jax.room_sim import PATHS, RoomConfig, distances, simulate_rooms

__all__ = ["PATHS", "RoomConfig", "Paths", "PathSpectra", "RirBank", "RoomMix", "build_rir_bank",
           "load_rir_bank", "room_index", "select", "response_spectra", "fft_convolve", "fft_filter",
           "spectrum", "room_mix"]

FORMAT = "maskgan-jax-rirbank/1"
# fold_in stream for an example's room, so the room draw is independent of its noise draw.
ROOM_STREAM = 0x524F4F4D  # "ROOM"


class Paths(NamedTuple):
    """The four responses of a room (or a batch of rooms), ``[..., L]`` each, PATHS order."""
    talker_mic: jax.Array
    talker_listener: jax.Array
    masker_mic: jax.Array
    masker_listener: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class RirBank:
    """Simulated rooms: responses [R, 4, L] (PATHS order) and the facts of each room.

    Positions and dims in metres; ``rt60`` is the requested RT60, ``rt60_measured`` the
    Schroeder T20 of each response [R, 4]; ``absorption`` the wall energy absorption used
    and ``absorption_sabine`` Sabine's for the requested RT60; ``distances`` [R, 4] per path.
    """
    config: RoomConfig
    seed: int
    rirs: np.ndarray
    dims: np.ndarray
    rt60: np.ndarray
    rt60_measured: np.ndarray
    absorption: np.ndarray
    absorption_sabine: np.ndarray
    max_order: np.ndarray
    talker: np.ndarray
    masker: np.ndarray
    mic: np.ndarray
    listener: np.ndarray
    distances: np.ndarray
    build_seconds: float = 0.0

    @property
    def n_rooms(self) -> int:
        return int(self.rirs.shape[0])

    def paths(self) -> Paths:
        """The responses as a Paths of device arrays [R, L] (pass them into jitted steps)."""
        return Paths(*(jnp.asarray(self.rirs[:, i]) for i in range(len(PATHS))))

    def spectra(self, length: int) -> "PathSpectra":
        """The responses' spectra for clips of ``length`` samples, on device (room_mix's fast input)."""
        return response_spectra(self.paths(), length)

    def facts(self) -> dict:
        """Summary of the bank for result records (plain JSON values)."""
        def span(x):
            return [float(np.min(x)), float(np.median(x)), float(np.max(x))]
        err = self.rt60_measured / self.rt60[:, None] - 1.0
        return {"format": FORMAT, "seed": self.seed, "n_rooms": self.n_rooms, "config": self.config.to_dict(),
                "rt60_min_median_max": span(self.rt60),
                "rt60_rel_error_max": float(np.nanmax(np.abs(err))),
                "distance_min_median_max": {p: span(self.distances[:, i]) for i, p in enumerate(PATHS)},
                "build_seconds": self.build_seconds}


_ARRAYS = ("rirs", "dims", "rt60", "rt60_measured", "absorption", "absorption_sabine", "max_order",
           "talker", "masker", "mic", "listener", "distances")


def _cache_key(config: RoomConfig, seed: int, n_rooms: int) -> dict:
    return {"format": FORMAT, "config": config.to_dict(), "seed": int(seed), "n_rooms": int(n_rooms),
            "pyroomacoustics": pra.__version__}


def cache_path(cache_dir: str | os.PathLike, config: RoomConfig, seed: int, n_rooms: int) -> str:
    """Where the bank for (config, seed, n_rooms) is cached in ``cache_dir``."""
    key = json.dumps(_cache_key(config, seed, n_rooms), sort_keys=True)
    return os.path.join(os.fspath(cache_dir), f"rirbank-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz")


def _assemble(config: RoomConfig, seed: int, rooms: list, seconds: float) -> RirBank:
    draws, sims = zip(*rooms)
    return RirBank(
        config=config, seed=int(seed),
        rirs=np.stack([s.rirs for s in sims]).astype(np.float32),
        dims=np.stack([d.dims for d in draws]), rt60=np.array([d.rt60 for d in draws]),
        rt60_measured=np.stack([s.rt60_measured for s in sims]),
        absorption=np.array([s.absorption for s in sims]),
        absorption_sabine=np.array([s.absorption_sabine for s in sims]),
        max_order=np.array([s.max_order for s in sims], np.int32),
        talker=np.stack([d.talker for d in draws]), masker=np.stack([d.masker for d in draws]),
        mic=np.stack([d.mic for d in draws]), listener=np.stack([d.listener for d in draws]),
        distances=np.stack([distances(d) for d in draws]), build_seconds=float(seconds))


def save_rir_bank(bank: RirBank, path: str | os.PathLike) -> None:
    """Writes the bank as an .npz (no object arrays) atomically (temp file + rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    meta = json.dumps({**_cache_key(bank.config, bank.seed, bank.n_rooms), "build_seconds": bank.build_seconds})
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".rirbank.", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(meta), **{k: getattr(bank, k) for k in _ARRAYS})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_rir_bank(path: str | os.PathLike) -> RirBank:
    """Reads a bank written by save_rir_bank (never unpickles; ValueError if damaged)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            arrays = {k: np.asarray(z[k]) for k in _ARRAYS}
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a readable RIR bank ({type(e).__name__}: {e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: RIR bank format {meta.get('format')!r}, expected {FORMAT!r}")
    config = RoomConfig(**meta["config"])
    n = arrays["rirs"].shape[0]
    if arrays["rirs"].shape != (meta["n_rooms"], len(PATHS), config.rir_length):
        raise ValueError(f"{path}: damaged RIR bank, responses have shape {arrays['rirs'].shape}")
    if any(arrays[k].shape[0] != n for k in _ARRAYS):
        raise ValueError(f"{path}: damaged RIR bank, arrays disagree on the number of rooms")
    return RirBank(config=config, seed=int(meta["seed"]), build_seconds=float(meta.get("build_seconds", 0.0)),
                   **arrays)


def build_rir_bank(config: RoomConfig, seed: int, n_rooms: int, cache_dir: str | os.PathLike | None = None,
                   workers: int | None = None, log=None) -> RirBank:
    """The bank of ``n_rooms`` rooms for ``seed``: read from ``cache_dir`` or simulated (and cached there).

    Room i is the same for every ``n_rooms`` > i. Simulation runs in ``workers`` processes
    (default: the CPU count, at most n_rooms). A damaged or mismatching cache file is
    rebuilt with a warning.
    """
    if n_rooms < 1:
        raise ValueError(f"n_rooms must be >= 1, got {n_rooms}")
    path = cache_path(cache_dir, config, seed, n_rooms) if cache_dir is not None else None
    if path is not None and os.path.exists(path):
        try:
            bank = load_rir_bank(path)
            if bank.config == config and bank.seed == int(seed) and bank.n_rooms == n_rooms:
                return bank
            reason = "it holds another room set"
        except ValueError as e:
            reason = str(e)
        logging.warning("RIR bank cache %s is rebuilt: %s", path, reason)
    workers = host_workers.default_workers(n_rooms) if workers is None else int(workers)
    if log is not None:
        log(f"[room] simulating {n_rooms} rooms (seed {seed}) with pyroomacoustics in {workers} process(es)"
            + (f"; cached in {path}" if path else ""))
    t0 = time.perf_counter()
    rooms = simulate_rooms(config, seed, range(n_rooms), workers)
    bank = _assemble(config, seed, rooms, time.perf_counter() - t0)
    if log is not None:
        log(f"[room] {n_rooms} rooms in {bank.build_seconds:.1f} s")
    if path is not None:
        save_rir_bank(bank, path)
    return bank


# ------------------------------------------------------------------------- device side

@functools.partial(jax.jit, static_argnums=1)
def room_index(key_B: jax.Array, n_rooms: int) -> jax.Array:
    """Each example's room, int32 [B], drawn from its own key (independent of batching)."""
    return jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, ROOM_STREAM), (), 0, n_rooms))(key_B)


def select(paths, index_B: jax.Array):
    """The rooms ``index_B`` [B] of a bank's Paths [R, L] (or PathSpectra [R, n/2+1]), same type."""
    return jax.tree.map(lambda p: jnp.take(p, index_B, axis=0), paths)


def fft_size(n: int) -> int:
    """Smallest even 2^a 3^b 5^c 7^d >= n (a >= 1: sizes every FFT library handles fast)."""
    n = max(int(n), 2)
    best = 1 << (n - 1).bit_length()
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                m = 2 * p3
                while m < n:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


@functools.partial(jax.jit, static_argnums=1)
def spectrum(h_BxL: jax.Array, length: int) -> jax.Array:
    """Spectrum of responses [..., L] for filtering clips of ``length`` samples (complex64 [..., n/2+1])."""
    n = fft_size(length + h_BxL.shape[-1] - 1)  # no circular wrap into the first ``length`` samples
    return jnp.fft.rfft(h_BxL.astype(jnp.float32), n=n)


def _filter(xf, hf, n: int, t: int):
    return jnp.fft.irfft(xf * hf, n=n)[..., :t]


def _check_bins(hf, n: int, taps: int, t: int) -> None:
    if hf.shape[-1] != n // 2 + 1:
        raise ValueError(f"response spectra have {hf.shape[-1]} bins, clips of {t} samples with {taps}-tap "
                         f"responses need {n // 2 + 1}: compute them with spectrum(h, {t})")


@functools.partial(jax.jit, static_argnums=2)
def fft_filter(x_BxT: jax.Array, h_spec: jax.Array, taps: int) -> jax.Array:
    """fft_convolve with the responses' spectra given (``spectrum(h, T)``; ``taps`` = their length L)."""
    t = x_BxT.shape[-1]
    n = fft_size(t + taps - 1)
    _check_bins(h_spec, n, taps, t)
    return _filter(jnp.fft.rfft(x_BxT.astype(jnp.float32), n=n), h_spec, n, t)


@jax.jit
def fft_convolve(x_BxT: jax.Array, h_BxL: jax.Array) -> jax.Array:
    """Causal filtering: the first T samples of the full convolution of each row of x with h (float32)."""
    t, taps = x_BxT.shape[-1], h_BxL.shape[-1]
    return fft_filter(x_BxT, spectrum(h_BxL, t), taps)


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=list(PATHS), meta_fields=["taps"])
@dataclasses.dataclass(frozen=True)
class PathSpectra:
    """The four responses' spectra (``response_spectra``), complex64 [..., n/2+1]; ``taps`` is L (static).

    Computed once per bank and clip length, they spare room_mix four of its ten FFTs.
    """
    talker_mic: jax.Array
    talker_listener: jax.Array
    masker_mic: jax.Array
    masker_listener: jax.Array
    taps: int


def response_spectra(paths: Paths, length: int) -> PathSpectra:
    """Spectra of a bank's (or a batch's) responses for clips of ``length`` samples."""
    return PathSpectra(*(spectrum(p, int(length)) for p in paths), taps=int(paths.talker_mic.shape[-1]))


class RoomMix(NamedTuple):
    """What the room channel gives: the attacker's recording and the listener's signals.

    mic: [B, T] microphone mix after the gain control, clipped to [-1, 1];
    n_clipped: int32 [B] samples clipped; listener_clean / listener_masked: [B, T] speech
    (and speech + masker) at the listener, playback calibration (unclipped: sound in air);
    snr_mic_db / snr_listener_db: [B] speech-to-noise ratios where heard (+inf without noise).
    """
    mic: jax.Array
    n_clipped: jax.Array
    listener_clean: jax.Array
    listener_masked: jax.Array
    snr_mic_db: jax.Array
    snr_listener_db: jax.Array


def _ms(x):
    return jnp.maximum(jnp.mean(jnp.square(x), axis=-1), levels.POWER_FLOOR)


def level_rms(spl_db, fullscale_spl: float = levels.DEFAULT_FULLSCALE_SPL):
    """The RMS (playback calibration) of a level in dB SPL: 10^((spl - fullscale) / 20)."""
    return 10.0 ** ((spl_db - fullscale_spl) / 20.0)


@functools.partial(jax.jit, static_argnames=("speech_spl", "noise_spl", "fullscale_spl", "allow_above_comfort"))
def room_mix(clean_BxT: jax.Array, noise_BxT: jax.Array | None, rirs: Paths | PathSpectra, speech_spl: float = 60.0,
             noise_spl: float = levels.COMFORT_LIMIT_SPL, fullscale_spl: float = levels.DEFAULT_FULLSCALE_SPL,
             allow_above_comfort: bool = False) -> RoomMix:
    """Speech and masking noise through the room; see the module's calibration.

    ``rirs``: each example's responses, Paths [B, L] or PathSpectra (``response_spectra``
    of the bank for clips of T samples, then ``select``).

    ``noise_BxT=None`` is the unmasked room (clean cells): the microphone hears reverberant
    speech only. Jitted, with the levels static (concrete numbers; each new level compiles
    once); inside a program of one's own, `room_mix_rms` takes them as traced RMS values.
    """
    levels._check_comfort(noise_spl, allow_above_comfort, "noise_spl")
    return room_mix_rms(clean_BxT, noise_BxT, rirs, np.float32(level_rms(float(speech_spl), fullscale_spl)),
                        np.float32(level_rms(float(noise_spl), fullscale_spl)))


def room_mix_rms(clean_BxT: jax.Array, noise_BxT: jax.Array | None, rirs: Paths | PathSpectra,
                 speech_rms, noise_rms) -> RoomMix:
    """`room_mix` with the levels as RMS values (traceable: one program serves every level).

    The caller checks the comfort limit (``level_rms`` turns dB SPL into these values).
    """
    c = jnp.asarray(clean_BxT)
    levels._check_float(c, "clean")
    c = c.astype(jnp.float32)
    t = c.shape[-1]
    if isinstance(rirs, PathSpectra):
        taps = rirs.taps
        spec = rirs
    else:
        taps = rirs.talker_mic.shape[-1]
        spec = None
    n = fft_size(t + taps - 1)

    def through(xf, name):
        if spec is None:
            hf = jnp.fft.rfft(getattr(rirs, name).astype(jnp.float32), n=n)
        else:
            hf = getattr(spec, name)
            _check_bins(hf, n, taps, t)
        return _filter(xf, hf, n, t)

    ms_clean = _ms(c)
    # Dry speech as heard 1 m from the talker (unity free-field gain at 1 m).
    cf = jnp.fft.rfft(c * (speech_rms / jnp.sqrt(ms_clean))[..., None], n=n)
    speech_mic = through(cf, "talker_mic")
    speech_lis = through(cf, "talker_listener")
    agc = jnp.sqrt(ms_clean / _ms(speech_mic))
    if noise_BxT is None:
        mic = speech_mic * agc[..., None]
        inf = jnp.full(c.shape[:-1], jnp.inf, jnp.float32)
        n_clipped = jnp.sum(jnp.abs(mic) > 1.0, axis=-1, dtype=jnp.int32)
        return RoomMix(jnp.clip(mic, -1.0, 1.0), n_clipped, speech_lis, speech_lis, inf, inf)
    z = jnp.asarray(noise_BxT)
    levels._check_float(z, "noise")
    zf = jnp.fft.rfft(z.astype(jnp.float32), n=n)
    noise_lis = through(zf, "masker_listener")
    noise_mic = through(zf, "masker_mic")
    ms_nl = _ms(noise_lis)
    g = noise_rms / jnp.sqrt(ms_nl)
    # Silent noise stays silent (its floored power would otherwise get a huge gain).
    g = jnp.where(jnp.mean(jnp.square(noise_lis), axis=-1) > 0, g, 0.0)
    noise_lis = noise_lis * g[..., None]
    noise_mic = noise_mic * g[..., None]
    mic = (speech_mic + noise_mic) * agc[..., None]
    n_clipped = jnp.sum(jnp.abs(mic) > 1.0, axis=-1, dtype=jnp.int32)

    def snr(s, v):
        return 10.0 * jnp.log10(_ms(s) / _ms(v))

    return RoomMix(jnp.clip(mic, -1.0, 1.0), n_clipped, speech_lis, speech_lis + noise_lis,
                   snr(speech_mic, noise_mic), snr(speech_lis, noise_lis))
