"""The project's benchmark binary: one JSON line per figure, peers side by side.

    python -m experiments.bench --out=out/bench.jsonl [--only=mel,runs,...] [--quick]

Each figure is appended to --out as one JSON line (with the machine it ran on); the run ends
with a short table: figure, ours, peer (or reference), ratio.
"""
from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "out/bench.jsonl", "JSON lines output file (appended).")
flags.DEFINE_bool("json", False, "Also print every record as a JSON line on stdout.")
flags.DEFINE_list("only", [], "Run only these suites (default: all). See --list.")
flags.DEFINE_bool("list", False, "List the suites and exit.")
flags.DEFINE_bool("quick", False, "Fewer repeats and smaller sizes (a smoke run, not figures).")
flags.DEFINE_integer("repeats", 5, "Timed repeats per measurement (medians are reported).")
flags.DEFINE_string("peer_python", None, "Python with torch for the peers (default .venv-peers).")


def main(argv):
    from experiments.benchmarks import available_suites, common
    suites = available_suites()
    if FLAGS.list:
        print("\n".join(sorted(suites)))
        return
    unknown = [s for s in FLAGS.only if s not in suites]
    if unknown:
        raise app.UsageError(f"--only: unknown suite(s) {unknown}; known: {sorted(suites)}")
    chosen = FLAGS.only or sorted(suites)
    ctx = common.Context(repeats=FLAGS.repeats, quick=FLAGS.quick, peer_python=FLAGS.peer_python)
    host = common.machine()
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    everything = []
    for i, name in enumerate(chosen, 1):
        print(f"[bench] {i}/{len(chosen)} {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        records = suites[name](ctx)
        with open(FLAGS.out, "a") as f:
            for r in records:
                r.setdefault("machine", host)
                line = json.dumps(r, default=float)
                f.write(line + "\n")
                if FLAGS.json:
                    print(line, flush=True)
        everything += records
        print(f"[bench] {name} done in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    print(common.summary_table(everything))
    print(f"[bench] {len(everything)} records appended to {FLAGS.out}", file=sys.stderr)


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
