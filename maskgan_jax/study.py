"""The study: one resumable pipeline from noise to report.

Stages (each cached in the output folder and skipped when its result is already there):
corpora (embedded, or the real datasets' folders) -> array stores -> MaskGAN training
(resumable) -> noise examples -> randomness of clean and masked audio -> attack cells ->
report. Cells are independent, so ``worker``/``num_workers`` split them across processes or
machines sharing one output folder; the shared stages are built once under a file lock,
and the report merges whatever cells exist.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import platform
import socket
import sys
import time
from typing import Any, Callable

import numpy as np

from maskgan_jax import report, results, study_cells
from maskgan_jax.levels import COMFORT_LIMIT_SPL
from maskgan_jax.progress import Progress

RUN_INFO = "run_info.json"
# Bump when the randomness records gain or change fields, so cached ones are recomputed.
RANDOMNESS_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Everything that defines a study (written to ``OUT/study_config.json``)."""
    name: str = "default"
    tasks: tuple = ("mgi", "udi", "sei", "commands")
    models: tuple = ("cnn", "rnn", "crnn")
    noises: tuple = ("white", "pink", "brown", "gan")
    levels: tuple = (35.0, 45.0)
    allow_above_comfort: bool = False
    adversaries: tuple = ("static", "adaptive", "denoise")
    adaptive_levels: tuple | None = None        # None: the adaptive adversary at every level
    exclude: str = ""                           # cells dropped from the sweep (--cells syntax)
    seeds: tuple = (0,)
    speech_spl: float = 60.0
    clip_samples: int = 32768
    data_dirs: tuple = ()                       # ((task, folder), ...); empty: embedded corpora
    corpus_size: str = "default"
    corpus_seed: int = 0
    attack: tuple = ()                          # ((model, attack.AttackConfig), ...)
    denoise_front_end: str = "wiener"
    gan: Any = None                             # gan.GanConfig (None when no GAN noise is swept)
    gan_workdir: str = ""                       # '' = OUT/maskgan, trained by the study
    randomness_clips: int = 128
    noise_clips: int = 16
    reference_level: float = COMFORT_LIMIT_SPL
    report_seed: int = 0

    def validate(self) -> "StudyConfig":
        """Raises ValueError naming the bad field."""
        from maskgan_jax.data import layouts
        for t in self.tasks:
            layouts.layout_of(t)
        for n in self.noises:
            if n not in study_cells.NOISES or n == "none":
                raise ValueError(f"noises: {n!r} is not one of white, pink, brown, gan")
        for a in self.adversaries:
            if a not in study_cells.ADVERSARIES:
                raise ValueError(f"adversaries: {a!r} is not one of {study_cells.ADVERSARIES}")
        loud = [lv for lv in self.levels if lv > COMFORT_LIMIT_SPL]
        if loud and not self.allow_above_comfort:
            raise ValueError(f"levels {loud} exceed the {COMFORT_LIMIT_SPL:g} dB SPL comfort limit; "
                             "set allow_above_comfort (--allow_above_comfort) for a research sweep")
        attack_models = dict(self.attack)
        missing = [m for m in self.models if m not in attack_models]
        if missing:
            raise ValueError(f"models {missing} have no attack config")
        if "gan" in self.noises and self.gan is None and not self.gan_workdir:
            raise ValueError("noise 'gan' needs a MaskGAN config or a trained gan_workdir")
        if not self.seeds:
            raise ValueError("seeds: at least one seed")
        return self

    def cells(self) -> list[study_cells.Cell]:
        """The full sweep of this study (less the ``exclude`` filter's cells)."""
        cells = study_cells.enumerate_cells(self.tasks, self.models, self.noises, self.levels,
                                            self.adversaries, self.seeds, self.adaptive_levels)
        drop = study_cells.parse_filter(self.exclude)
        return [c for c in cells if not drop or not study_cells.matches(c, drop)]

    def to_json(self) -> dict:
        """JSON-able form (nested configs as dicts)."""
        return study_cells.results_json(dataclasses.asdict(self))


# --------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def _locked(out_dir: str, name: str):
    """An exclusive file lock so that concurrent workers build a shared stage once."""
    os.makedirs(os.path.join(out_dir, "locks"), exist_ok=True)
    with open(os.path.join(out_dir, "locks", name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_json(path: str, obj: Any) -> None:
    results.write_text_atomic(path, results.dumps(obj))


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_info_name(worker: int = 0, num_workers: int = 1) -> str:
    """run_info.json for a lone run or worker 0; run_info.worker-K-of-N.json for the others.

    Workers sharing one output folder each time their own stages, so each keeps its own
    file instead of overwriting one another's.
    """
    return RUN_INFO if num_workers <= 1 or worker == 0 else f"run_info.worker-{worker}-of-{num_workers}.json"


class Run:
    """Run facts (stages, wall times, devices, versions) kept in ``OUT/run_info.json`` (see run_info_name)."""

    def __init__(self, out_dir: str, config: StudyConfig, log: Callable[[str], None], worker: int = 0,
                 num_workers: int = 1):
        self.out_dir, self.config, self.log = out_dir, config, log
        self.path = os.path.join(out_dir, run_info_name(worker, num_workers))
        old = _read_json(self.path) or {}
        self.info = {"config_name": config.name, "out": os.path.abspath(out_dir),
                     "seeds": list(config.seeds), "stages": old.get("stages", {}),
                     "started": old.get("started") or time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                     "host": socket.gethostname(), "platform": platform.platform(),
                     "argv": sys.argv, "versions": results.versions()}

    @contextlib.contextmanager
    def stage(self, name: str):
        """Times a stage and records its wall time and status."""
        t0 = time.perf_counter()
        self.log(f"[study] stage {name}")
        status = {"status": "running"}
        try:
            yield status
            if status["status"] == "running":
                status["status"] = "done"
        except BaseException:
            status["status"] = "failed"
            raise
        finally:
            status["wall_s"] = time.perf_counter() - t0
            self.info["stages"][name] = dict(status)
            self.save()
            self.log(f"[study] stage {name}: {status['status']} in {status['wall_s']:.1f} s")

    def save(self) -> None:
        """Writes run_info.json atomically."""
        _write_json(self.path, self.info)


# --------------------------------------------------------------------------- stages

def stage_corpora(cfg: StudyConfig, out_dir: str) -> dict:
    """task -> corpus folder: the configured real folders or embedded corpora under OUT/corpora."""
    given = dict(cfg.data_dirs)
    roots = {}
    for task in cfg.tasks:
        if task in given:
            if not os.path.isdir(given[task]):
                raise ValueError(f"data folder for task {task}: {given[task]} does not exist")
            roots[task] = given[task]
        else:
            from maskgan_jax.data import synthetic
            folder = os.path.join(out_dir, "corpora", synthetic.layout_name(task))
            roots[task] = synthetic.make_corpus(task, folder, seed=cfg.corpus_seed, size=cfg.corpus_size)
    return roots


def stage_stores(cfg: StudyConfig, out_dir: str, roots: dict, log) -> dict:
    """task -> opened array store (built once, reused while the corpus is unchanged)."""
    from maskgan_jax.data import layouts, store
    stores = {}
    for task in cfg.tasks:
        corpus = layouts.load_corpus(roots[task], task)
        log(f"[study] {corpus.summary()}")
        for path, reason in corpus.broken[:10]:
            log(f"[study]   broken: {path}: {reason}")
        stores[task] = store.open_or_build_store(corpus, os.path.join(out_dir, "stores", task),
                                                 length=cfg.clip_samples, progress=True)
    return stores


def gan_workdir(cfg: StudyConfig, out_dir: str) -> str:
    """Where the study's MaskGAN lives."""
    return os.path.abspath(cfg.gan_workdir or os.path.join(out_dir, "maskgan"))


def stage_gan(cfg: StudyConfig, out_dir: str, log) -> dict:
    """Trains (or resumes, or finds finished) the MaskGAN; returns its identity for fingerprints."""
    from maskgan_jax import checkpoint, gan
    workdir = gan_workdir(cfg, out_dir)
    if cfg.gan is not None:
        # gan.train resumes, refuses a workdir trained with a different model, and does
        # nothing when the checkpoint already has the steps asked for.
        gan.train(cfg.gan, workdir, log_fn=log)
    elif not os.path.isdir(workdir):
        raise ValueError(f"gan_workdir {workdir}: no trained MaskGAN there")
    config = gan.read_config(workdir).to_json()
    mngr = checkpoint.manager(os.path.join(workdir, gan.CHECKPOINT_DIR))
    try:
        step = checkpoint.latest_step(mngr)
    finally:
        mngr.close()
    return {"workdir": workdir, "config": config, "step": step,
            "fingerprint": study_cells.fingerprint({"config": config, "step": step})}


def noise_spec(cfg: StudyConfig, out_dir: str, noise: str) -> str:
    """The attack's --noise spelling of a study noise."""
    return f"gan:{gan_workdir(cfg, out_dir)}" if noise == "gan" else noise


_PROGRAMS: dict = {}


def _noise_program(spec: str, length: int):
    """(source, jitted (arrays, key, index_B) -> noise [B, T]) with attack_noise.mix's keys, cached."""
    import jax
    from maskgan_jax import attack_noise
    if (spec, length) not in _PROGRAMS:
        src = attack_noise.make_source(spec, length)
        _PROGRAMS[(spec, length)] = (src, jax.jit(
            lambda arrays, k, idx: src.fn(arrays, attack_noise.example_keys(k, idx))))
    return _PROGRAMS[(spec, length)]


def _mix(clean, noise, snr_db):
    import jax
    from maskgan_jax import levels
    if "mix" not in _PROGRAMS:
        _PROGRAMS["mix"] = jax.jit(levels.mix_at_snr_jax)
    return _PROGRAMS["mix"](clean, noise, snr_db)


def _noise_batch(spec: str, n: int, length: int, seed: int) -> np.ndarray:
    """n float32 noise clips [n, length] from an attack noise source (unit-free, as generated)."""
    import jax
    import jax.numpy as jnp
    src, fn = _noise_program(spec, length)
    return np.asarray(fn(src.arrays, jax.random.key(seed), jnp.arange(n, dtype=jnp.int32)), np.float32)


def stage_noises(cfg: StudyConfig, out_dir: str, stores: dict) -> dict:
    """Example noise files at the reference level (OUT/noises/*.wav) and a clean example clip."""
    from maskgan_jax import audio, levels
    folder = os.path.join(out_dir, "noises")
    os.makedirs(folder, exist_ok=True)
    ref = report.ref_level(sorted(cfg.levels), cfg.reference_level) or cfg.reference_level
    made = {}
    for noise in cfg.noises:
        path = os.path.join(folder, f"{noise}_{ref:g}dB.wav")
        if not os.path.exists(path):
            clip = _noise_batch(noise_spec(cfg, out_dir, noise), 1, cfg.clip_samples, cfg.report_seed)[0]
            wave = levels.scale_to_spl(clip, ref, allow_above_comfort=cfg.allow_above_comfort)
            audio.save_wav(path + ".tmp.wav", np.asarray(wave))
            os.replace(path + ".tmp.wav", path)
        made[noise] = path
    for task in ("commands", "sei", "udi", "mgi"):
        if task in stores:
            path = os.path.join(folder, f"clean_{task}.wav")
            if not os.path.exists(path):
                st = stores[task]
                pcm = np.asarray(st.audio[0])
                audio.save_wav(path + ".tmp.wav", pcm.astype(np.float32) / 32768.0)
                os.replace(path + ".tmp.wav", path)
            made["clean"] = path
            break
    return made


def score_int16(x_CxT: np.ndarray) -> dict:
    """Per-clip Wald–Wolfowitz and Cox–Stuart p-values of int16 clips [C, T] (kernels/)."""
    import kernels
    s = kernels.score_clips(np.ascontiguousarray(x_CxT, dtype=np.int16))
    return {"ww_p": np.asarray(s["ww_p"], np.float64), "cs_p": np.asarray(s["cs_p"], np.float64),
            "ww_z": np.asarray(s["ww_z"], np.float64)}


def _rand_record(task, source, noise, level, ps: dict, extra: dict) -> dict:
    from maskgan_jax import metrics
    rec = {"kind": "randomness", "task": task, "source": source, "noise": noise, "noise_spl": level,
           "n": int(ps["ww_p"].size)}
    for test in ("ww", "cs"):
        s = metrics.randomness_summary(ps[f"{test}_p"])
        rec.update({f"{test}_mean_p": s["mean_p"], f"{test}_ci95": s["ci95"],
                    f"{test}_frac_below": s["frac_below_alpha"]})
    if "ww_z" in ps:
        # p-values of audio saturate at 0; |z| still orders how far from random a set is.
        rec["ww_mean_abs_z"] = float(np.mean(np.abs(ps["ww_z"])))
    rec.update(extra)
    return rec


def stage_randomness(cfg: StudyConfig, out_dir: str, stores: dict, gan_fp: str | None, log) -> list[dict]:
    """Randomness of clean, masked (every noise and level) audio per dataset, and of the noises."""
    import jax
    import jax.numpy as jnp
    from maskgan_jax import attack_noise, audio, levels
    out = []
    ident = {"format": RANDOMNESS_FORMAT, "clips": cfg.randomness_clips, "noise_clips": cfg.noise_clips, "levels": list(cfg.levels),
             "noises": list(cfg.noises), "speech_spl": cfg.speech_spl, "gan": gan_fp,
             "seed": cfg.report_seed}
    for task in cfg.tasks:
        st = stores[task]
        fp = study_cells.fingerprint({**ident, "store": st.fingerprint})
        path = os.path.join(out_dir, "randomness", f"{task}.jsonl")
        old = results.read_jsonl(path)
        if old and all(r.get("fingerprint") == fp for r in old):
            out.extend(old)
            continue
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.report_seed, 0x7261])
        n = min(cfg.randomness_clips, len(st))
        idx = np.sort(rng.permutation(len(st))[:n])
        pcm = np.asarray(st.audio[idx])
        recs = [_rand_record(task, "clean", "none", None, score_int16(pcm), {"fingerprint": fp})]
        clean = jnp.asarray(audio.int16_to_float(pcm))
        key = jax.random.fold_in(jax.random.key(cfg.report_seed), 2)
        for noise in cfg.noises:
            # The same per-clip noise as the attacks draw (attack_noise.mix), drawn once per noise
            # and mixed at every level by one compiled mix.
            src, noise_fn = _noise_program(noise_spec(cfg, out_dir, noise), pcm.shape[1])
            noise_BxT = noise_fn(src.arrays, key, jnp.asarray(idx, jnp.int32))
            for lv in cfg.levels:
                snr = attack_noise.check_levels(lv, cfg.speech_spl, cfg.allow_above_comfort)
                mixed, _ = _mix(clean, noise_BxT, np.float32(snr))
                q, _ = audio.float_to_int16(np.clip(np.asarray(mixed), -1.0, 1.0))
                recs.append(_rand_record(task, "masked", noise, float(lv), score_int16(q),
                                         {"fingerprint": fp}))
        results.write_jsonl_atomic(path, recs)
        log(f"[study] randomness of {task}: {len(recs)} sets of {n} clips in {time.perf_counter() - t0:.1f} s")
        out.extend(recs)
    # The noises alone, at the reference level (what the masking device plays).
    ref = report.ref_level(sorted(cfg.levels), cfg.reference_level) or cfg.reference_level
    fp = study_cells.fingerprint({**ident, "clip_samples": cfg.clip_samples})
    path = os.path.join(out_dir, "randomness", "noises.jsonl")
    old = results.read_jsonl(path)
    if old and all(r.get("fingerprint") == fp for r in old):
        out.extend(old)
    else:
        recs = []
        for noise in cfg.noises:
            clips = _noise_batch(noise_spec(cfg, out_dir, noise), cfg.noise_clips, cfg.clip_samples,
                                 cfg.report_seed + 1)
            scaled = np.stack([np.asarray(levels.scale_to_spl(c, ref, allow_above_comfort=True))
                               for c in clips])
            q, _ = audio.float_to_int16(np.clip(scaled, -1.0, 1.0))
            recs.append(_rand_record("", "noise", noise, float(ref), score_int16(q), {"fingerprint": fp}))
        results.write_jsonl_atomic(path, recs)
        out.extend(recs)
    return out


# --------------------------------------------------------------------------- cells

def cell_env(cfg: StudyConfig, out_dir: str, stores: dict, gan_info: dict | None, log,
             on_cell_done=lambda c: None) -> study_cells.GroupEnv:
    """How the cell runner builds each cell's attack config, fingerprint and record fields."""
    attack_models = dict(cfg.attack)

    def attack_config(c: study_cells.Cell):
        base = attack_models[c.model]
        return dataclasses.replace(
            base, task=c.task, seed=c.seed, speech_spl=cfg.speech_spl,
            noise=noise_spec(cfg, out_dir, c.noise),
            noise_spl=base.noise_spl if c.level is None else c.level,
            allow_above_comfort=cfg.allow_above_comfort,
            adversary="adaptive" if c.adversary == "adaptive" else "static",
            front_end=cfg.denoise_front_end if c.adversary == "denoise" else "none",
            front_end_at="test")

    def cell_fp(c: study_cells.Cell) -> str:
        a = study_cells.results_json(dataclasses.asdict(attack_config(c)))
        a["noise"] = c.noise
        return study_cells.fingerprint({"cell": c.id, "attack": a, "store": stores[c.task].fingerprint,
                                        "gan": gan_info["fingerprint"] if c.noise == "gan" else None})

    def extra(c: study_cells.Cell) -> dict:
        return {"study": cfg.name, "speech_spl": cfg.speech_spl, "corpus": stores[c.task].name,
                "store_fingerprint": stores[c.task].fingerprint,
                "gan": ({"workdir": gan_info["workdir"], "step": gan_info["step"]}
                        if c.noise == "gan" and gan_info else None),
                "versions": results.versions()}

    return study_cells.GroupEnv(out_dir=out_dir, data=lambda t: stores[t], attack_config=attack_config,
                                cell_fingerprint=cell_fp, extra=extra, log=log, on_cell_done=on_cell_done)


def stage_cells(cfg: StudyConfig, out_dir: str, env: study_cells.GroupEnv, cells_spec: str,
                worker: int, num_workers: int, log) -> dict:
    """Runs this worker's pending cells group by group, with a done/total progress line."""
    mine = study_cells.select(cfg.cells(), cells_spec, worker, num_workers)
    fps = {c: env.cell_fingerprint(c) for c in mine}
    done = [c for c in mine if study_cells.is_done(out_dir, c, fps[c])]
    todo = [c for c in mine if c not in set(done)]
    log(f"[study] cells for worker {worker}/{num_workers}: {len(mine)} selected, {len(done)} done, "
        f"{len(todo)} to run")
    prog = Progress(len(todo), f"[study] cells (of {len(mine)}; {len(done)} done earlier)", "cells")

    def on_done(c):
        prog.update(1, force=True)
        log(f"[study] cell done: {c.id}")

    env.on_cell_done = on_done
    for group, cells in study_cells.group_cells(todo).items():
        study_cells.run_group(group, cells, env)
    prog.close()
    return {"selected": len(mine), "done_before": len(done), "computed": prog.done,
            "counters": dict(env.counters)}


# --------------------------------------------------------------------------- the pipeline

def run_study(config: StudyConfig, out_dir: str, cells: str = "", worker: int = 0, num_workers: int = 1,
              report_only: bool = False, log: Callable[[str], None] | None = None,
              make_report: bool = True) -> dict:
    """Runs (or resumes) the whole study into ``out_dir`` and writes OUT/report.md; returns run facts."""
    import jax
    cfg = config.validate()
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    cfg_path = os.path.join(out_dir, "study_config.json")
    _write_json(cfg_path, cfg.to_json())
    run = Run(out_dir, cfg, say, worker, num_workers)
    run.info["devices"] = [str(d) for d in jax.devices()]
    run.info["worker"] = f"{worker}/{num_workers}"
    run.info["cells_filter"] = cells
    t_all = time.perf_counter()
    facts: dict = {}
    gan_info = None
    if not report_only:
        with _locked(out_dir, "data"):
            with run.stage("corpora"):
                roots = stage_corpora(cfg, out_dir)
            with run.stage("stores"):
                stores = stage_stores(cfg, out_dir, roots, say)
        if "gan" in cfg.noises:
            with _locked(out_dir, "gan"), run.stage("maskgan") as st:
                gan_info = stage_gan(cfg, out_dir, say)
                st["step"] = gan_info["step"]
        with _locked(out_dir, "noises"), run.stage("noises"):
            examples = stage_noises(cfg, out_dir, stores)
        with _locked(out_dir, "randomness"), run.stage("randomness"):
            randomness = stage_randomness(cfg, out_dir, stores,
                                          gan_info["fingerprint"] if gan_info else None, say)
        env = cell_env(cfg, out_dir, stores, gan_info, say)
        with run.stage("cells") as st:
            facts = stage_cells(cfg, out_dir, env, cells, worker, num_workers, say)
            st.update(facts)
    if make_report or report_only:
        with run.stage("report"):
            facts["report"] = write_study_report(cfg, out_dir, run)
    facts["wall_s"] = time.perf_counter() - t_all
    run.info["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    run.save()
    return facts


def write_study_report(cfg: StudyConfig, out_dir: str, run: Run | None = None) -> str:
    """Merges every cell and randomness record in ``out_dir`` into report.md and its figures."""
    from maskgan_jax import audio
    records = study_cells.read_all_cells(out_dir)
    rand = []
    for f in sorted(os.listdir(os.path.join(out_dir, "randomness"))) \
            if os.path.isdir(os.path.join(out_dir, "randomness")) else []:
        if f.endswith(".jsonl"):
            rand.extend(results.read_jsonl(os.path.join(out_dir, "randomness", f)))
    examples = {}
    folder = os.path.join(out_dir, "noises")
    if os.path.isdir(folder):
        for f in sorted(os.listdir(folder)):
            if f.endswith(".wav") and not f.endswith(".tmp.wav"):
                kind = f.split("_")[0]
                if kind in ("clean", "white", "gan"):
                    examples[kind] = audio.load_audio(os.path.join(folder, f))
    total = cfg.cells()
    have = {r.get("cell") for r in records}
    missing = [c for c in total if c.id not in have]
    info = dict(run.info) if run else {}
    info["cells_done"] = len(total) - len(missing)
    info["cells_total"] = len(total)
    if missing:
        info["missing"] = (f"{len(missing)} of {len(total)} cells have no result yet (e.g. "
                           + "; ".join(c.id for c in missing[:3]) + ")")
    info["config"] = f"`{os.path.join(out_dir, 'study_config.json')}`"
    return report.write_report(out_dir, records, rand, info, examples, seed=cfg.report_seed,
                               reference_level=cfg.reference_level)
