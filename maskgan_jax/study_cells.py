"""Study cells: the sweep's grid, ``--cells`` filters, worker shards, and running cells resumably.

A cell is one (task, model, noise, level, adversary, seed) attack; its result is one JSON
line written atomically to its own file. Cells that share a trained attacker form a
*training group*: the clean baseline, every static cell and every denoising cell of a
(task, model, seed) are tested on one attacker trained on clean audio (exactly what
``attack.run_attack`` would train for each of them, with the same keys), while an adaptive
cell trains on its own masked audio. A group trains each fold once and tests every pending
cell on it; finished folds are kept in a partial file, so an interrupted group resumes at
its next fold, and a finished cell is never recomputed.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import time
from collections import OrderedDict
from typing import Any, Callable, Iterable, Sequence


from maskgan_jax import results
from maskgan_jax.levels import COMFORT_LIMIT_SPL

NOISES = ("none", "white", "pink", "brown", "gan")
ADVERSARIES = ("static", "adaptive", "denoise")
FILTER_KEYS = ("task", "model", "noise", "level", "adversary", "seed")


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
    """One attack cell; ``level`` is None for the clean baseline (noise none)."""
    task: str
    model: str
    noise: str
    level: float | None
    adversary: str
    seed: int

    def fields(self) -> dict:
        """The filterable fields as strings (level '-' for the baseline)."""
        return {"task": self.task, "model": self.model, "noise": self.noise,
                "level": "-" if self.level is None else f"{self.level:g}",
                "adversary": self.adversary, "seed": str(self.seed)}

    @property
    def id(self) -> str:
        """'task=mgi,model=cnn,noise=white,level=45,adversary=static,seed=0'."""
        return ",".join(f"{k}={v}" for k, v in self.fields().items())

    @property
    def relpath(self) -> str:
        """The cell's result file, relative to the study folder."""
        lv = "clean" if self.level is None else f"{self.level:g}dB"
        return os.path.join("cells", self.task, self.model,
                            f"{self.noise}-{lv}-{self.adversary}-s{self.seed}.jsonl")

    @property
    def above_comfort(self) -> bool:
        """True for a noise louder than the 45 dB SPL comfort limit (marked in the report)."""
        return self.level is not None and self.level > COMFORT_LIMIT_SPL

    @property
    def group(self) -> tuple:
        """The training group: cells tested on the same trained attackers."""
        if self.adversary == "adaptive":
            return (self.task, self.model, self.seed, f"{self.noise}@{self.level:g}dB")
        return (self.task, self.model, self.seed, "clean")


def group_name(group: tuple) -> str:
    """A file-safe name of a training group."""
    return "-".join(str(g) for g in group).replace("@", "_at_")


def enumerate_cells(tasks: Sequence[str], models: Sequence[str], noises: Sequence[str],
                    levels: Sequence[float], adversaries: Sequence[str], seeds: Sequence[int],
                    adaptive_levels: Sequence[float] | None = None) -> list[Cell]:
    """The sweep: a clean baseline per (task, model, seed) and every masked combination, sorted."""
    for n in noises:
        if n not in NOISES:
            raise ValueError(f"noise {n!r}: expected one of {NOISES}")
    for a in adversaries:
        if a not in ADVERSARIES:
            raise ValueError(f"adversary {a!r}: expected one of {ADVERSARIES}")
    cells = []
    for t in tasks:
        for m in models:
            for s in seeds:
                cells.append(Cell(t, m, "none", None, "static", int(s)))
                for n in noises:
                    if n == "none":
                        continue
                    for lv in levels:
                        for a in adversaries:
                            if a == "adaptive" and adaptive_levels is not None \
                                    and float(lv) not in [float(x) for x in adaptive_levels]:
                                continue
                            cells.append(Cell(t, m, n, float(lv), a, int(s)))
    return sorted(set(cells), key=_order)


def _order(c: Cell):
    return (c.task, c.model, c.seed, c.adversary == "adaptive", NOISES.index(c.noise)
            if c.noise in NOISES else 99, -1 if c.level is None else c.level, c.adversary)


# --------------------------------------------------------------------------- --cells filters

def parse_filter(spec: str) -> list[dict[str, list[str]]]:
    """Parses ``--cells``: 'key=glob|glob,key=glob;...' (',' = and, '|' and ';' = or).

    Keys: task, model, noise, level, adversary, seed; values are shell-style globs on the
    cell's fields (level '-' is the clean baseline). Example: 'task=mgi,model=cnn|rnn,level=45'.
    """
    spec = (spec or "").strip()
    if not spec:
        return []
    alternatives = []
    for alt in spec.split(";"):
        alt = alt.strip()
        if not alt:
            continue
        terms: dict[str, list[str]] = {}
        for term in alt.split(","):
            term = term.strip()
            if not term:
                continue
            if "=" not in term:
                raise ValueError(f"--cells={spec!r}: {term!r} is not key=glob "
                                 f"(keys: {', '.join(FILTER_KEYS)})")
            k, v = (x.strip() for x in term.split("=", 1))
            if k not in FILTER_KEYS:
                raise ValueError(f"--cells={spec!r}: unknown key {k!r} (keys: {', '.join(FILTER_KEYS)})")
            if not v:
                raise ValueError(f"--cells={spec!r}: {k}= needs a value")
            terms.setdefault(k, []).extend(p.strip() for p in v.split("|"))
        alternatives.append(terms)
    return alternatives


def matches(cell: Cell, alternatives: list[dict[str, list[str]]]) -> bool:
    """True when the cell matches any alternative (every key in it); no filter matches all."""
    if not alternatives:
        return True
    f = cell.fields()
    return any(all(any(fnmatch.fnmatchcase(f[k], p) for p in pats) for k, pats in alt.items())
               for alt in alternatives)


def select(cells: Sequence[Cell], spec: str = "", worker: int = 0, num_workers: int = 1) -> list[Cell]:
    """The cells this worker runs: the filter, then every num_workers-th training group.

    Sharding by training group (in sweep order) keeps a clean-trained attacker from being
    trained twice by two workers; each worker still takes every N-th unit of work.
    """
    if num_workers < 1 or not 0 <= worker < num_workers:
        raise ValueError(f"--worker={worker} --num_workers={num_workers}: need 0 <= worker < num_workers")
    alts = parse_filter(spec)
    chosen = [c for c in cells if matches(c, alts)]
    groups = list(OrderedDict.fromkeys(c.group for c in chosen))
    mine = set(groups[worker::num_workers])
    return [c for c in chosen if c.group in mine]


def group_cells(cells: Iterable[Cell]) -> "OrderedDict[tuple, list[Cell]]":
    """Cells by training group, in sweep order."""
    out: OrderedDict[tuple, list[Cell]] = OrderedDict()
    for c in cells:
        out.setdefault(c.group, []).append(c)
    return out


# --------------------------------------------------------------------------- records on disk

def fingerprint(obj: Any) -> str:
    """A short hash of a JSON-able object (what decides a cell's numbers)."""
    return hashlib.sha256(results.dumps(obj).encode()).hexdigest()[:16]


def read_cell(out_dir: str, cell: Cell) -> dict | None:
    """The finished record of a cell, or None."""
    recs = [r for r in results.read_jsonl(os.path.join(out_dir, cell.relpath)) if r.get("kind") == "cell"]
    return recs[-1] if recs else None


def is_done(out_dir: str, cell: Cell, fp: str) -> bool:
    """True when the cell's file holds a record made with the same fingerprint."""
    r = read_cell(out_dir, cell)
    return r is not None and r.get("fingerprint") == fp


def read_all_cells(out_dir: str) -> list[dict]:
    """Every cell record under ``out_dir/cells`` (whatever workers have written)."""
    out = []
    root = os.path.join(out_dir, "cells")
    for dirpath, _dirs, files in os.walk(root):
        for f in sorted(files):
            if f.endswith(".jsonl") and not f.startswith("."):
                out.extend(r for r in results.read_jsonl(os.path.join(dirpath, f)) if r.get("kind") == "cell")
    return out


def cell_record(cell: Cell, fold_recs: list[dict], config: dict, fp: str, extra: dict) -> dict:
    """The cell's JSON record: mean accuracy and interval over folds, folds, full config."""
    from maskgan_jax import metrics
    folds = sorted(fold_recs, key=lambda r: r["fold"])
    est = metrics.mean_ci([r["accuracy"] for r in folds])
    rec = {"kind": "cell", "cell": cell.id, "task": cell.task, "model": cell.model,
           "noise": cell.noise, "noise_spl": cell.level, "adversary": cell.adversary,
           "seed": cell.seed, "accuracy": est.value, "ci95": est.ci95, "ci_method": est.method,
           "n_folds": len(folds), "above_comfort": cell.above_comfort, "folds": folds,
           "fingerprint": fp, "config": config}
    rec.update(extra)
    return rec


# --------------------------------------------------------------------------- running a group

def shared_steps(cfg, heads, clip: int, mesh):
    """An `attack.Steps` for masked audio whose noise and SNR are inputs instead of constants.

    ``attack.Steps`` bakes its noise source and SNR into the compiled programs, so a sweep
    would compile a program per noise × level × fold group. Here the noise of each batch is
    drawn by one small program per noise source (with the same per-example keys as
    ``attack_noise.mix``) and handed to the step with the SNR, so one train/eval program per
    (task, model, adversary, front end) serves every noise and level. Results equal those
    of ``attack.run_attack`` for the same cell (tested). Static: tested on masked audio;
    adaptive: also trained and validated on it. Set ``.condition = (source, noise_fn, snr_db)``
    before use.
    """
    import jax.numpy as jnp

    from maskgan_jax import attack, attack_noise, levels

    class _Steps(attack.Steps):
        def log_mel(self, batch, key, noise_arrays, masked, front):
            if not masked:
                return super().log_mel(batch, key, noise_arrays, False, front)
            (snr_db,) = noise_arrays
            wave = batch["audio"].astype(jnp.float32) * (1.0 / 32768.0)
            mixed, n_clip = levels.mix_at_snr_jax(wave, batch["noise"], snr_db)
            # The parent scales int16 to [-1, 1]; scaling by a power of two is exact.
            mel, _ = super().log_mel({**batch, "audio": mixed * 32768.0}, key, (), False, front)
            return mel, jnp.sum(n_clip * (batch["weight"] > 0))

    # A marker source: it only switches the parent's steps to their masked variants.
    marker = attack_noise.NoiseSource(attack_noise.NoiseSpec("dir", "<input>"), None, (), {})
    steps = _Steps(cfg, heads, clip, mesh, marker)
    jit_train, jit_eval = steps.train_step, dict(steps.eval_step)
    steps.condition = None

    def with_noise(b, key):
        src, noise_fn, snr = steps.condition
        return {**b, "noise": noise_fn(src.arrays, key, b["index"])}, (snr,)

    def train_step(state, b, key, _arrays):
        b2, arrays = with_noise(b, key)
        return jit_train(state, b2, key, arrays)

    def eval_fn(phase):
        def fn(params, b, key, _arrays):
            if phase == "valid" and cfg.adversary != "adaptive":
                return jit_eval[phase](params, b, key, ())   # static validation hears clean audio
            b2, arrays = with_noise(b, key)
            return jit_eval[phase](params, b2, key, arrays)
        return fn

    steps.train_step = train_step
    steps.eval_step = {p: eval_fn(p) for p in jit_eval}
    steps.noise_arrays = ()
    return steps


@dataclasses.dataclass
class GroupEnv:
    """What running a group needs from the study (built by study.py), and compiled programs."""
    out_dir: str
    data: Callable[[str], Any]                         # task -> array store
    attack_config: Callable[[Cell], Any]               # cell -> attack.AttackConfig
    cell_fingerprint: Callable[[Cell], str]
    extra: Callable[[Cell], dict]                      # fields added to the cell record
    log: Callable[[str], None] = print
    on_cell_done: Callable[[Cell], None] = lambda c: None
    counters: dict = dataclasses.field(default_factory=lambda: {"train_fold": 0, "evaluate": 0})
    programs: dict = dataclasses.field(default_factory=dict)

    def steps(self, cfg, heads, clip: int, mesh, masked: bool):
        """A cached Steps for a config with its noise, level and seed left out of the key."""
        import dataclasses as dc

        from maskgan_jax import attack
        key_cfg = dc.replace(cfg, noise="none" if not masked else "<input>", noise_spl=45.0, seed=0,
                             allow_above_comfort=True)
        key = ("steps", masked, repr(key_cfg), tuple(heads), clip)
        if key not in self.programs:
            if masked:
                self.programs[key] = shared_steps(cfg, heads, clip, mesh)
            else:
                self.programs[key] = attack.Steps(dc.replace(cfg, noise="none"), heads, clip, mesh, None)
        return self.programs[key]

    def noise(self, spec: str, clip: int, sample_rate: int):
        """(source, jitted (arrays, key, index_B) -> noise [B, T]) for a noise spec, cached."""
        import jax

        from maskgan_jax import attack_noise
        key = ("noise", spec, clip, sample_rate)
        if key not in self.programs:
            src = attack_noise.make_source(spec, clip, sample_rate)
            fn = jax.jit(lambda arrays, k, idx, s=src: s.fn(arrays, attack_noise.example_keys(k, idx)))
            self.programs[key] = (src, fn)
        return self.programs[key]


def _fold_summary(test: dict, info: dict, fold: int, n_test: int, seconds: float) -> dict:
    keep = {"fold": fold, "accuracy": test["accuracy"], "n_test": n_test,
            "per_attribute_accuracy": {a: v["accuracy"] for a, v in test["per_attribute"].items()},
            "clipped_samples": test.get("clipped_samples", 0),
            "best_epoch": info.get("best_epoch"), "epochs_trained": info.get("epochs_trained"),
            "val_accuracy": info.get("val_accuracy"), "seconds": seconds}
    if "all_correct_accuracy" in test:
        keep["all_correct_accuracy"] = test["all_correct_accuracy"]
    if "per_class_recall" in test:
        keep["per_class_recall"] = test["per_class_recall"]
    return keep


def run_group(group: tuple, cells: list[Cell], env: GroupEnv) -> list[dict]:
    """Trains the group's attackers fold by fold and writes each pending cell when complete."""
    import dataclasses as dc

    import jax

    from maskgan_jax import attack, attack_folds, attack_noise, parallel

    fps = {c: env.cell_fingerprint(c) for c in cells}
    pending = [c for c in cells if not is_done(env.out_dir, c, fps[c])]
    if not pending:
        return []
    task, _model, seed, _cond = group
    data = attack.as_array_data(env.data(task))
    heads = [(a, len(data.classes[a])) for a in data.classes]
    cfgs = {c: env.attack_config(c).validate() for c in pending}
    base = cfgs[pending[0]]
    mesh = parallel.make_mesh(base.num_devices)
    parallel.check_batch_size(base.batch_size, mesh, "batch_size")
    clip = int(data.audio.shape[1])

    def steps_for(c):
        cfg = cfgs[c]
        if c.noise == "none":
            return env.steps(cfg, heads, clip, mesh, masked=False)
        st = env.steps(cfg, heads, clip, mesh, masked=True)
        src, fn = env.noise(cfg.noise, clip, cfg.mel.sample_rate)
        st.condition = (src, fn, attack_noise.check_levels(cfg.noise_spl, cfg.speech_spl,
                                                           cfg.allow_above_comfort))
        st.source_info = src.info
        return st

    if group[3] == "clean":
        # Static and denoising adversaries train on clean audio: one attacker for all of them.
        train_cfg = dc.replace(base, noise="none", adversary="static", front_end="none")
        train_steps = lambda: env.steps(train_cfg, heads, clip, mesh, masked=False)  # noqa: E731
    else:
        train_steps = lambda: steps_for(pending[0])  # noqa: E731
    splits = attack_folds.fold_indices(data.groups, data.splits, base.folds, seed, base.val_fraction)
    partial_path = os.path.join(env.out_dir, "partial", group_name(group) + ".jsonl")
    fold_recs: dict[Cell, dict[int, dict]] = {c: {} for c in pending}
    for r in results.read_jsonl(partial_path):
        c = next((c for c in pending if c.id == r.get("cell") and fps[c] == r.get("fingerprint")), None)
        if c is not None:
            fold_recs[c][r["fold"]] = r["result"]
    base_key = jax.random.key(seed)
    test_key = jax.random.fold_in(base_key, 2)   # as attack.run_attack: same noise per clip everywhere
    written = []
    for f, split in enumerate(splits):
        todo = [c for c in pending if f not in fold_recs[c]]
        if not todo:
            continue
        t0 = time.perf_counter()
        env.log(f"[study] {group_name(group)} fold {f + 1}/{len(splits)}: training "
                f"({split['train'].size} train, {split['valid'].size} valid) for {len(todo)} cell(s)")
        env.counters["train_fold"] += 1
        params, info = attack.train_fold(train_steps(), data, split, jax.random.fold_in(base_key, 1000 + f),
                                         seed, f, log=lambda s: None)
        t_train = time.perf_counter() - t0
        for c in todo:
            t1 = time.perf_counter()
            env.counters["evaluate"] += 1
            test = attack.evaluate(steps_for(c), params, data, split["test"], test_key, "test")
            fold_recs[c][f] = _fold_summary(test, info, f, int(split["test"].size),
                                            t_train / len(todo) + time.perf_counter() - t1)
        results.write_jsonl_atomic(partial_path, [
            {"cell": c.id, "fingerprint": fps[c], "fold": k, "result": v}
            for c in pending for k, v in sorted(fold_recs[c].items())])
        for c in todo:
            if len(fold_recs[c]) == len(splits):
                cfg = results_json(dc.asdict(cfgs[c]))
                cfg["noise"] = c.noise   # the record names the noise; the GAN's identity is in the fingerprint
                info_src = getattr(steps_for(c), "source_info", None) if c.noise != "none" else None
                rec = cell_record(c, list(fold_recs[c].values()), cfg, fps[c],
                                  {**env.extra(c), "devices": parallel.describe(mesh),
                                   "noise_info": info_src})
                results.write_jsonl_atomic(os.path.join(env.out_dir, c.relpath), [rec])
                written.append(rec)
                env.on_cell_done(c)
    if os.path.exists(partial_path) and all(len(fold_recs[c]) == len(splits) for c in pending):
        os.unlink(partial_path)
    return written


def results_json(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists)."""
    return json.loads(results.dumps(obj))
