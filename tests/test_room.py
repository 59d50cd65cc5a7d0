"""The room channel: responses against acoustics' closed forms, convolution against scipy, the cache, levels."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from pyroomacoustics.experimental.rt60 import measure_rt60

from maskgan_jax import levels, room, room_sim

FS = 16000


# ------------------------------------------------------------------ reverberation time

# Rooms at the corners of the default ranges where Sabine's formula and the image-source
# decay disagree most (measured: a long low room at RT60 0.2-0.3 s decays 1.5x slower than
# requested, a small room at 0.2 s 0.8x as fast), and a large room at 0.8 s.
CORNERS = {
    "long_low_short_rt60": dict(dims_min=(7.5, 3.0, 2.4), dims_max=(8.0, 3.4, 2.5), rt60_range=(0.2, 0.3)),
    "small_short_rt60": dict(dims_min=(3.0, 3.0, 2.4), dims_max=(3.3, 3.3, 2.5), rt60_range=(0.2, 0.25)),
    "large_long_rt60": dict(dims_min=(7.5, 5.5, 3.0), dims_max=(8.0, 6.0, 3.2), rt60_range=(0.7, 0.8)),
}


@pytest.fixture(scope="module")
def corner_banks():
    return {k: room.build_rir_bank(room.RoomConfig(**v), seed=3, n_rooms=1, workers=1) for k, v in CORNERS.items()}


@pytest.mark.parametrize("corner", sorted(CORNERS))
def test_schroeder_decay_gives_the_requested_rt60_within_20_percent(corner_banks, corner):
    bank = corner_banks[corner]
    want = bank.rt60[0]
    for p, h in zip(room.PATHS, bank.rirs[0]):
        # pyroomacoustics' own Schroeder backward integration, T20 extrapolated to 60 dB.
        got = measure_rt60(h, FS, decay_db=20)
        assert abs(got / want - 1) < 0.2, (corner, p, got, want)
    # Sabine alone would miss in the long low room; the bank records both absorptions.
    assert bank.absorption_sabine[0] > 0 and bank.absorption[0] > 0


def test_schroeder_estimator_on_an_exponential_decay():
    # Noise under an envelope exp(-3 ln(10) t / T) loses 60 dB of energy in T seconds.
    t60 = 0.45
    t = np.arange(int(1.0 * FS)) / FS
    h = np.random.default_rng(0).standard_normal(t.size) * np.exp(-3 * np.log(10) * t / t60)
    assert room_sim.schroeder_rt60(h, FS) == pytest.approx(t60, rel=0.05)


# ----------------------------------------------------------------------- free field

def test_free_field_falls_6db_per_doubling_and_is_unity_at_1m():
    r = np.array([0.7, 1.4, 2.8, 5.6])
    src = np.array([12.0, 12.0, 5.0])
    rec = [src + [d, 0.0, 0.0] for d in r]
    h = room_sim.simulate((25.0, 25.0, 10.0), 1.0, 0, [src], rec, FS, FS)[:, 0].astype(np.float64)
    level = 10 * np.log10(np.sum(h * h, axis=-1))
    np.testing.assert_allclose(np.diff(level), -20 * np.log10(2), atol=0.5)
    # Unity gain at 1 m: the direct path at r has gain 1/r.
    np.testing.assert_allclose(level, -20 * np.log10(r), atol=0.5)


def test_speech_at_the_listener_in_free_field_is_60_db_at_1m_minus_the_distance_law():
    d = 2.0
    src, lis = np.array([12.0, 12.0, 5.0]), np.array([12.0 + d, 12.0, 5.0])
    h = jnp.asarray(room_sim.simulate((25.0, 25.0, 10.0), 1.0, 0, [src], [lis], FS, 2048)[0])
    paths = room.Paths(h, h, h, h)
    clean = (0.05 * np.random.default_rng(1).standard_normal((1, 32768))).astype(np.float32)
    out = room.room_mix(clean, None, paths, speech_spl=60.0)
    spl = levels.rms_dbfs(np.asarray(out.listener_clean)[0]) + levels.DEFAULT_FULLSCALE_SPL
    assert spl == pytest.approx(60.0 - 20 * np.log10(d), abs=0.3)


# ------------------------------------------------------------------------ convolution

@pytest.mark.parametrize("shape_x,shape_h", [((3, 1000), (3, 300)), ((2, 100), (2, 257)),
                                             ((2, 3, 517), (2, 3, 64)), ((1, 4096), (1, 1))])
def test_fft_convolve_equals_scipy_fftconvolve(shape_x, shape_h):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape_x).astype(np.float32)
    h = rng.standard_normal(shape_h).astype(np.float32)
    want = scipy.signal.fftconvolve(x.astype(np.float64), h.astype(np.float64), axes=-1)[..., :shape_x[-1]]
    got = np.asarray(jax.jit(room.fft_convolve)(x, h))
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())


def test_fft_size_is_even_7_smooth_and_minimal():
    def smooth(m):
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        return m == 1
    for n in (1, 2, 97, 1000, 40767, 65537):
        got = room.fft_size(n)
        assert got >= n and got % 2 == 0 and smooth(got)
        assert not any(smooth(m) for m in range(max(n, 2), got) if m % 2 == 0)


def test_precomputed_spectra_give_the_same_filtering():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 700)).astype(np.float32)
    hs = [rng.standard_normal((3, 90)).astype(np.float32) for _ in range(4)]
    want = scipy.signal.fftconvolve(x.astype(np.float64), hs[0].astype(np.float64), axes=-1)[:, :700]
    got = np.asarray(room.fft_filter(x, room.spectrum(hs[0], 700), 90))
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())
    paths = room.Paths(*map(jnp.asarray, hs))
    spec = room.response_spectra(paths, 700)
    noise = rng.standard_normal((3, 700)).astype(np.float32)
    a, b = room.room_mix(x, noise, paths), room.room_mix(x, noise, room.select(spec, jnp.arange(3)))
    for f in a._fields:
        np.testing.assert_allclose(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="spectrum"):
        room.room_mix(x[:, :300], noise[:, :300], spec)


# ------------------------------------------------------------------- bank and cache

TINY = room.RoomConfig(dims_min=(3.0, 3.0, 2.4), dims_max=(4.0, 3.5, 2.6), rt60_range=(0.2, 0.25),
                       rir_length=2048)


def test_cache_round_trips_without_pickle(tmp_path, monkeypatch):
    bank = room.build_rir_bank(TINY, seed=5, n_rooms=2, cache_dir=tmp_path, workers=1)
    path = room.cache_path(tmp_path, TINY, 5, 2)
    with np.load(path, allow_pickle=False) as z:  # raises on any object array
        assert not any(z[k].dtype == object for k in z.files)
    monkeypatch.setattr(room, "simulate_rooms", lambda *a, **k: pytest.fail("cache not used"))
    again = room.build_rir_bank(TINY, seed=5, n_rooms=2, cache_dir=tmp_path)
    assert again.config == TINY and again.seed == 5 and again.n_rooms == 2
    for f in dataclasses.fields(bank):
        a, b = getattr(bank, f.name), getattr(again, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
    assert bank.rirs.dtype == np.float32 and bank.rirs.shape == (2, 4, 2048)
    assert room.cache_path(tmp_path, TINY, 6, 2) != path


def test_damaged_cache_is_rebuilt_and_pickles_are_refused(tmp_path):
    path = room.cache_path(tmp_path, TINY, 5, 1)
    np.savez(path, meta=np.array([{"format": room.FORMAT}], dtype=object))
    with pytest.raises(ValueError, match="not a readable RIR bank"):
        room.load_rir_bank(path)
    bank = room.build_rir_bank(TINY, seed=5, n_rooms=1, cache_dir=tmp_path, workers=1)
    np.testing.assert_array_equal(room.load_rir_bank(path).rirs, bank.rirs)


def test_worker_processes_give_the_same_rooms_and_room_i_does_not_depend_on_n_rooms():
    two = room.build_rir_bank(TINY, seed=7, n_rooms=2, workers=2)
    one = room.build_rir_bank(TINY, seed=7, n_rooms=1, workers=1)
    np.testing.assert_array_equal(two.rirs[:1], one.rirs)
    np.testing.assert_array_equal(two.talker[:1], one.talker)
    assert not np.array_equal(two.rirs[0], two.rirs[1])


def test_drawn_positions_meet_the_documented_constraints():
    cfg = room.RoomConfig()
    for i in range(300):
        d = room_sim.draw_room(cfg, 11, i)
        assert np.all(d.dims >= cfg.dims_min) and np.all(d.dims <= cfg.dims_max)
        assert cfg.rt60_range[0] <= d.rt60 <= cfg.rt60_range[1]
        pts = {"talker": d.talker, "masker": d.masker, "mic": d.mic, "listener": d.listener}
        for p in pts.values():
            assert np.all(p >= cfg.wall_margin) and np.all(p <= d.dims - cfg.wall_margin)
        assert cfg.talker_height[0] <= d.talker[2] <= cfg.talker_height[1]
        assert cfg.mic_height[0] <= d.mic[2] <= cfg.mic_height[1]
        dist = dict(zip(room.PATHS, room_sim.distances(d)))
        assert cfg.talker_mic[0] <= dist["talker_mic"] <= cfg.talker_mic[1]
        assert cfg.talker_listener[0] <= dist["talker_listener"] <= cfg.talker_listener[1]
        assert cfg.masker_listener[0] <= dist["masker_listener"] <= cfg.masker_listener[1]
        assert dist["masker_mic"] >= cfg.min_separation
        assert np.linalg.norm(d.masker - d.talker) >= cfg.min_separation
        assert np.linalg.norm(d.mic - d.listener) >= cfg.min_separation


@pytest.mark.parametrize("bad", [dict(dims_min=(1.0, 3.0, 2.4)), dict(rt60_range=(0.5, 0.2)),
                                  dict(talker_height=(1.2, 2.5)), dict(rir_length=0)])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="RoomConfig"):
        room.RoomConfig(**bad)


# ------------------------------------------------------------- per-example room choice

def test_room_index_depends_only_on_the_example_key():
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(4000))
    idx = np.asarray(room.room_index(keys, 5))
    np.testing.assert_array_equal(np.asarray(room.room_index(keys[1000:1016], 5)), idx[1000:1016])
    np.testing.assert_array_equal(np.asarray(jax.jit(room.room_index, static_argnums=1)(keys[7:9], 5)), idx[7:9])
    counts = np.bincount(idx, minlength=5)
    assert idx.min() >= 0 and idx.max() < 5
    # Uniform over rooms: chi-square with 4 dof below its 0.999 quantile (18.47).
    assert np.sum((counts - 800) ** 2 / 800) < 18.47
    # Not the same stream as a draw from the key itself (the noise's).
    own = np.asarray(jax.vmap(lambda k: jax.random.randint(k, (), 0, 5))(keys))
    assert np.mean(own == idx) < 0.3


# --------------------------------------------------------------------------- levels

def _delta_paths(gains, length=16):
    out = []
    for g in gains:
        h = np.zeros((1, length), np.float32)
        h[0, 0] = g
        out.append(jnp.asarray(h))
    return room.Paths(*out)


def test_room_mix_levels_follow_the_distance_law_with_pure_direct_paths():
    # Direct paths only: gains 1/r for talker->mic 2 m, talker->listener 1.5 m,
    # masker->mic 3 m, masker->listener 1.2 m.
    r_tm, r_tl, r_mm, r_ml = 2.0, 1.5, 3.0, 1.2
    paths = _delta_paths([1 / r_tm, 1 / r_tl, 1 / r_mm, 1 / r_ml])
    rng = np.random.default_rng(2)
    clean = (0.05 * rng.standard_normal((1, 8000))).astype(np.float32)
    noise = rng.standard_normal((1, 8000)).astype(np.float32)
    out = jax.jit(lambda c, n: room.room_mix(c, n, paths, speech_spl=60.0, noise_spl=45.0))(clean, noise)
    spl = lambda x: levels.rms_dbfs(np.asarray(x, np.float64)[0]) + 90.0  # noqa: E731
    assert spl(out.listener_clean) == pytest.approx(60 - 20 * np.log10(r_tl), abs=1e-3)
    assert spl(np.asarray(out.listener_masked) - np.asarray(out.listener_clean)) == pytest.approx(45.0, abs=1e-3)
    snr_lis = 60 - 20 * np.log10(r_tl) - 45
    snr_mic = (60 - 20 * np.log10(r_tm)) - (45 + 20 * np.log10(r_ml / r_mm))
    assert float(out.snr_listener_db[0]) == pytest.approx(snr_lis, abs=1e-3)
    assert float(out.snr_mic_db[0]) == pytest.approx(snr_mic, abs=1e-3)
    # The microphone's gain control keeps speech at its recorded level: with direct paths
    # the recording is the digital model's mix at the microphone's SNR.
    want = levels.mix_at_snr(clean, noise, snr_mic).wave
    np.testing.assert_allclose(np.asarray(out.mic), want, atol=2e-6)


def test_room_mix_counts_clipped_samples_and_unmasked_room_keeps_speech_level():
    paths = _delta_paths([0.5, 0.7, 0.3, 0.9])
    rng = np.random.default_rng(3)
    clean = np.clip(0.6 * rng.standard_normal((2, 4000)), -1, 1).astype(np.float32)
    noise = rng.standard_normal((2, 4000)).astype(np.float32)
    out = room.room_mix(clean, noise, paths, noise_spl=45.0)
    ref = levels.mix_at_snr(clean, noise, np.asarray(out.snr_mic_db, np.float64))
    np.testing.assert_array_equal(np.asarray(out.n_clipped), ref.n_clipped)
    assert np.asarray(out.n_clipped).sum() > 0 and np.abs(np.asarray(out.mic)).max() <= 1.0
    dry = room.room_mix(0.1 * clean, None, paths)
    np.testing.assert_array_equal(np.asarray(dry.listener_masked), np.asarray(dry.listener_clean))
    np.testing.assert_allclose(levels.rms_dbfs(np.asarray(dry.mic)), levels.rms_dbfs(0.1 * clean), atol=1e-4)
    assert np.all(np.isinf(np.asarray(dry.snr_mic_db)))


def test_room_mix_refuses_noise_above_the_comfort_limit():
    paths = _delta_paths([1.0] * 4)
    x = np.ones((1, 64), np.float32)
    with pytest.raises(ValueError, match="comfort"):
        room.room_mix(x, x, paths, noise_spl=50.0)
    room.room_mix(x, x, paths, noise_spl=50.0, allow_above_comfort=True)


def test_bank_rooms_through_room_mix_on_device(corner_banks):
    bank = corner_banks["small_short_rt60"]
    paths = bank.paths()
    keys = jax.random.split(jax.random.key(1), 3)
    rng = np.random.default_rng(4)
    clean = (0.05 * rng.standard_normal((3, 4096))).astype(np.float32)
    noise = rng.standard_normal((3, 4096)).astype(np.float32)

    @jax.jit
    def step(c, n, p, k):
        return room.room_mix(c, n, room.select(p, room.room_index(k, bank.n_rooms)))

    out = step(clean, noise, paths, keys)
    assert out.mic.shape == (3, 4096) and np.isfinite(np.asarray(out.listener_masked)).all()
    # The masker's level is defined at the listener: 45 dB SPL there, in a real room too.
    noise_at_listener = np.asarray(out.listener_masked, np.float64) - np.asarray(out.listener_clean)
    np.testing.assert_allclose(levels.rms_dbfs(noise_at_listener) + 90.0, 45.0, atol=1e-3)
