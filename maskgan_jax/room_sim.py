"""Host side of the room channel: drawing shoebox rooms and simulating them with pyroomacoustics.

Nothing here imports jax, so the bank builder's worker processes start quickly; the device
side (convolution, levels, the bank and its cache) is ``maskgan_jax.room``.

A room is drawn from ``RoomConfig``'s ranges with a numpy generator seeded by
``(seed, room_number)``, so room i is the same whatever the number of rooms in the bank.
Its four responses come from the image-source model (``pyroomacoustics.ShoeBox``, no air
absorption, frequency-flat walls), are scaled to unity gain for the free-field direct path
at 1 m (``free_field_scale``) and cut or zero-padded to ``rir_length`` samples.

Reverberation time. Sabine inversion (``pyroomacoustics.inverse_sabine``) gives the wall
absorption and the image-source order for the drawn RT60. The image-source decay departs
from Sabine's diffuse-field formula in long or flat rooms (measured on 32 rooms from the
default ranges: Schroeder T20 from 0.77x to 1.34x the requested RT60, a quarter of them
more than 20 % off), so the absorption is then corrected from a simulation of the
talker-listener path: its Schroeder T20 is measured and the absorption updated by Eyring's
law, ``1 - a' = (1 - a)**(T/RT60)``, until T20 is within ``rt60_tolerance`` of the request
(at most ``rt60_steps`` corrections). The bank records the Sabine absorption, the one used,
and every path's measured T20 (same 32 rooms, all four paths: within 13 % of the request).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import tempfile
from typing import NamedTuple

import numpy as np
import pyroomacoustics as pra

from maskgan_jax import host_workers

# The four paths of a room, in the order of the bank's path axis.
PATHS = ("talker_mic", "talker_listener", "masker_mic", "masker_listener")
SPEED_OF_SOUND = 343.0  # m/s, pyroomacoustics' default (20 C, dry air)


@dataclasses.dataclass(frozen=True)
class RoomConfig:
    """Ranges rooms are drawn from (metres, seconds); every field is recorded with a bank.

    Geometry: a shoebox ``dims_min``..``dims_max`` (length x width x height, default
    3-8 x 3-6 x 2.4-3.2 m, living rooms to bedrooms). RT60 uniform in ``rt60_range``
    (0.2-0.8 s, furnished to bare rooms). Every position is at least ``wall_margin`` from
    every wall, the floor and the ceiling. Heights: the talker's mouth and the listener's
    ears 1.2-1.8 m (seated to standing); the attacker's microphone (a smart speaker on a
    table or shelf) and the masking loudspeaker 0.6-1.5 m. Distances (3-D): talker-listener
    1-3 m (conversation), talker-microphone 1-4 m, masker-listener 1-3 m (the masker sits
    near the person it protects); every other pair at least ``min_separation``.
    Responses: ``sample_rate`` Hz, ``rir_length`` samples (0.5 s at 16 kHz: a response of
    RT60 0.8 s has decayed by 37 dB when cut). The image-source order is Sabine's for the
    RT60, capped at the order that reaches ``rir_length`` (later images are cut anyway).
    """
    dims_min: tuple[float, float, float] = (3.0, 3.0, 2.4)
    dims_max: tuple[float, float, float] = (8.0, 6.0, 3.2)
    rt60_range: tuple[float, float] = (0.2, 0.8)
    sample_rate: int = 16000
    rir_length: int = 8000
    wall_margin: float = 0.5
    talker_height: tuple[float, float] = (1.2, 1.8)
    listener_height: tuple[float, float] = (1.2, 1.8)
    mic_height: tuple[float, float] = (0.6, 1.5)
    masker_height: tuple[float, float] = (0.6, 1.5)
    talker_listener: tuple[float, float] = (1.0, 3.0)
    talker_mic: tuple[float, float] = (1.0, 4.0)
    masker_listener: tuple[float, float] = (1.0, 3.0)
    min_separation: float = 0.5
    rt60_tolerance: float = 0.05
    rt60_steps: int = 4

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (list, tuple)):  # lists from JSON, ints from callers: one spelling, one cache key
                object.__setattr__(self, f.name, tuple(float(x) for x in v))
        lo, hi = np.asarray(self.dims_min, float), np.asarray(self.dims_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or (lo <= 0).any() or (hi < lo).any():
            raise ValueError(f"RoomConfig: dims_min {self.dims_min} / dims_max {self.dims_max} must be "
                             "three positive lengths with dims_min <= dims_max")
        for name in ("rt60_range", "talker_height", "listener_height", "mic_height", "masker_height",
                     "talker_listener", "talker_mic", "masker_listener"):
            a, b = getattr(self, name)
            if not (0 < a <= b):
                raise ValueError(f"RoomConfig.{name}={getattr(self, name)}: need 0 < low <= high")
        for name in ("talker_height", "listener_height", "mic_height", "masker_height"):
            a, b = getattr(self, name)
            if a < self.wall_margin or b > lo[2] - self.wall_margin:
                raise ValueError(f"RoomConfig.{name}={getattr(self, name)} must lie within "
                                 f"[wall_margin, lowest ceiling - wall_margin] = "
                                 f"[{self.wall_margin:g}, {lo[2] - self.wall_margin:g}] m")
        if (lo[:2] <= 2 * self.wall_margin).any():
            raise ValueError(f"RoomConfig: rooms of {self.dims_min} m leave no floor inside a "
                             f"{self.wall_margin:g} m wall margin")
        if self.sample_rate <= 0 or self.rir_length <= 0:
            raise ValueError("RoomConfig: sample_rate and rir_length must be positive")
        if not 0 < self.rt60_tolerance < 1 or self.rt60_steps < 0:
            raise ValueError("RoomConfig: rt60_tolerance must be in (0, 1), rt60_steps >= 0")

    def to_dict(self) -> dict:
        """The config as plain JSON values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


class RoomDraw(NamedTuple):
    """One drawn room: dimensions, requested RT60 and the four positions (metres)."""
    dims: np.ndarray
    rt60: float
    talker: np.ndarray
    masker: np.ndarray
    mic: np.ndarray
    listener: np.ndarray


class RoomSim(NamedTuple):
    """A simulated room: responses [4, rir_length] in PATHS order and its acoustic facts."""
    rirs: np.ndarray
    absorption: float
    absorption_sabine: float
    max_order: int
    rt60_measured: np.ndarray  # Schroeder T20 per path [4]
    correction_steps: int


def _dist(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def _point(rng, dims, height, margin) -> np.ndarray:
    return np.array([rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin),
                     rng.uniform(*height)])


def _within(d: float, rng_: tuple[float, float]) -> bool:
    return rng_[0] <= d <= rng_[1]


def draw_room(config: RoomConfig, seed: int, number: int, tries: int = 200) -> RoomDraw:
    """Room ``number`` of the bank for ``seed`` (rejection sampling of the constraints)."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(number)])
    m, sep = config.wall_margin, config.min_separation
    for _ in range(tries):
        dims = rng.uniform(config.dims_min, config.dims_max)
        rt60 = float(rng.uniform(*config.rt60_range))
        talker = _point(rng, dims, config.talker_height, m)
        for _ in range(tries):
            listener = _point(rng, dims, config.listener_height, m)
            if _within(_dist(talker, listener), config.talker_listener):
                break
        else:
            continue
        for _ in range(tries):
            mic = _point(rng, dims, config.mic_height, m)
            if _within(_dist(talker, mic), config.talker_mic) and _dist(mic, listener) >= sep:
                break
        else:
            continue
        for _ in range(tries):
            masker = _point(rng, dims, config.masker_height, m)
            if (_within(_dist(masker, listener), config.masker_listener)
                    and min(_dist(masker, talker), _dist(masker, mic)) >= sep):
                break
        else:
            continue
        return RoomDraw(dims, rt60, talker, masker, mic, listener)
    raise ValueError(f"RoomConfig: no room satisfying the distance constraints in {tries} draws "
                     f"(seed {seed}, room {number}); widen the distance ranges or the rooms")


def distances(draw: RoomDraw) -> np.ndarray:
    """Source-receiver distances of the four paths (PATHS order), metres."""
    return np.array([_dist(draw.talker, draw.mic), _dist(draw.talker, draw.listener),
                     _dist(draw.masker, draw.mic), _dist(draw.masker, draw.listener)])


def schroeder_rt60(h, sample_rate: float, start_db: float = -5.0, stop_db: float = -25.0) -> float:
    """RT60 from the Schroeder energy decay curve: least-squares line between start and stop dB, x 60/decay.

    The defaults give T20 (-5 to -25 dB, extrapolated to 60 dB). NaN if the curve never
    reaches ``stop_db``.
    """
    e = np.cumsum(np.square(np.asarray(h, np.float64))[::-1])[::-1]
    if e[0] <= 0:
        return float("nan")
    edc = 10.0 * np.log10(np.maximum(e / e[0], 1e-300))
    sel = np.nonzero((edc <= start_db) & (edc >= stop_db))[0]
    if sel.size < 2 or edc[-1] > stop_db:
        return float("nan")
    t = sel / float(sample_rate)
    slope = np.polyfit(t, edc[sel], 1)[0]
    return float(-60.0 / slope) if slope < 0 else float("nan")


def max_order_for(dims, seconds: float) -> int:
    """Image-source order whose images cover ``seconds`` of propagation (pyroomacoustics' rule)."""
    r = min(a * b / math.hypot(a, b) for a, b in ((dims[0], dims[1]), (dims[0], dims[2]), (dims[1], dims[2])))
    return max(0, int(math.ceil(SPEED_OF_SOUND * seconds / r - 1)))


def _pra_responses(dims, absorption, max_order, sources, receivers, sample_rate, length) -> np.ndarray:
    room = pra.ShoeBox(list(map(float, dims)), fs=int(sample_rate),
                       materials=pra.Material(float(absorption)), max_order=int(max_order),
                       air_absorption=False)
    for s in sources:
        room.add_source(list(map(float, s)))
    room.add_microphone_array(np.asarray(receivers, np.float64).T)
    room.compute_rir()
    out = np.zeros((len(receivers), len(sources), length), np.float64)
    for i in range(len(receivers)):
        for j in range(len(sources)):
            h = np.asarray(room.rir[i][j], np.float64)[:length]
            out[i, j, :h.size] = h
    return out


@functools.lru_cache(maxsize=None)
def free_field_scale(sample_rate: int) -> float:
    """Factor that gives pyroomacoustics' free-field response at 1 m unit energy.

    pyroomacoustics 0.10 gives image sources an amplitude 1/r (some older releases
    1/(4 pi r)); measuring once makes the calibration independent of that (0.10.1 at
    16 kHz: 1.0096, the fractional-delay filter's and the 10 Hz high-pass's loss).
    """
    h = _pra_responses((20.0, 20.0, 10.0), 1.0, 0, [(10.0, 10.0, 5.0)], [(11.0, 10.0, 5.0)],
                       sample_rate, int(sample_rate))[0, 0]
    return float(1.0 / np.sqrt(np.sum(np.square(h))))


def simulate(dims, absorption: float, max_order: int, sources, receivers, sample_rate: int,
             length: int) -> np.ndarray:
    """Responses [n_receivers, n_sources, length] of a shoebox, unit-energy gain at 1 m in free field.

    ``max_order=0`` is the free field (direct path only). pyroomacoustics delays every
    response by its fractional-delay filter's half length (40 samples) and high-passes
    it at 10 Hz; both are kept (the same for every path).
    """
    out = _pra_responses(dims, absorption, max_order, sources, receivers, sample_rate, length)
    return (out * free_field_scale(int(sample_rate))).astype(np.float32)


def simulate_room(config: RoomConfig, draw: RoomDraw) -> RoomSim:
    """The four responses of a drawn room, its absorption corrected to the requested RT60."""
    fs, length = config.sample_rate, config.rir_length
    a_sabine, order = pra.inverse_sabine(draw.rt60, list(draw.dims), c=SPEED_OF_SOUND)
    order = min(int(order), max_order_for(draw.dims, length / fs))
    a, steps = float(a_sabine), 0
    for steps in range(config.rt60_steps + 1):
        h = simulate(draw.dims, a, order, [draw.talker], [draw.listener], fs, length)[0, 0]
        t = schroeder_rt60(h, fs)
        if not np.isfinite(t) or abs(t / draw.rt60 - 1.0) <= config.rt60_tolerance or steps == config.rt60_steps:
            break
        a = float(np.clip(1.0 - (1.0 - a) ** (t / draw.rt60), 1e-3, 0.999))
    h = simulate(draw.dims, a, order, [draw.talker, draw.masker], [draw.mic, draw.listener], fs, length)
    # h[receiver, source] with receivers (mic, listener), sources (talker, masker) -> PATHS order.
    rirs = np.stack([h[0, 0], h[1, 0], h[0, 1], h[1, 1]])
    measured = np.array([schroeder_rt60(r, fs) for r in rirs])
    return RoomSim(rirs, a, float(a_sabine), order, measured, steps)


def make_room(config: RoomConfig, seed: int, number: int) -> tuple[RoomDraw, RoomSim]:
    """Room ``number`` of the bank for ``seed``, drawn and simulated (a worker process's task)."""
    draw = draw_room(config, seed, number)
    return draw, simulate_room(config, draw)


_DRAW = ("dims", "rt60", "talker", "masker", "mic", "listener")
_SIM = ("rirs", "absorption", "absorption_sabine", "max_order", "rt60_measured", "correction_steps")


def rooms_to_arrays(rooms: list[tuple[RoomDraw, RoomSim]]) -> dict:
    """Rooms as stacked arrays (a worker's .npz)."""
    out = {k: np.stack([np.asarray(getattr(d, k)) for d, _ in rooms]) for k in _DRAW}
    out.update({k: np.stack([np.asarray(getattr(s, k)) for _, s in rooms]) for k in _SIM})
    return out


def arrays_to_rooms(arrays) -> list[tuple[RoomDraw, RoomSim]]:
    """Inverse of rooms_to_arrays."""
    n = len(arrays["rt60"])
    return [(RoomDraw(*(arrays[k][i] if k != "rt60" else float(arrays[k][i]) for k in _DRAW)),
             RoomSim(arrays["rirs"][i], float(arrays["absorption"][i]), float(arrays["absorption_sabine"][i]),
                     int(arrays["max_order"][i]), arrays["rt60_measured"][i], int(arrays["correction_steps"][i])))
            for i in range(n)]


def simulate_rooms(config: RoomConfig, seed: int, numbers, workers: int = 1) -> list[tuple[RoomDraw, RoomSim]]:
    """Rooms ``numbers`` of the bank for ``seed``, in order, simulated in ``workers`` processes."""
    numbers = [int(i) for i in numbers]
    workers = max(1, min(int(workers), len(numbers)))
    if workers == 1:
        return [make_room(config, seed, i) for i in numbers]
    parts = [numbers[w::workers] for w in range(workers)]
    with tempfile.TemporaryDirectory(prefix="maskgan-rooms-") as tmp:
        outs = [os.path.join(tmp, f"rooms-{w}.npz") for w in range(workers)]
        cfg = json.dumps(config.to_dict())
        host_workers.run("maskgan_jax.room_sim",
                         [[out, cfg, str(int(seed)), ",".join(map(str, part))] for out, part in zip(outs, parts)],
                         f"simulating {len(numbers)} rooms")
        got = {}
        for out, part in zip(outs, parts):
            with np.load(out, allow_pickle=False) as z:
                got.update(zip(part, arrays_to_rooms({k: z[k] for k in z.files})))
    return [got[i] for i in numbers]


def _worker_main(argv: list[str]) -> None:
    out, cfg, seed, numbers = argv
    config = RoomConfig(**json.loads(cfg))
    rooms = [make_room(config, int(seed), int(i)) for i in numbers.split(",")]
    tmp = out + ".tmp.npz"
    np.savez(tmp, **rooms_to_arrays(rooms))
    os.replace(tmp, out)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
