"""How every binary starts: absl flags, the same help from ``python -m`` and the console scripts,
one-line usage errors, quiet libraries.

* ``--help`` shows the binary's description and its own flags whether it was started as
  ``python -m experiments.NAME`` or as the console script ``maskgan-NAME`` (absl lists the
  flags of the module that ``sys.argv[0]`` names, which for a console script is the wrapper).
* A user's mistake (`app.UsageError`, or a bad flag value) prints one line naming the flag
  and the fix, then a pointer to ``--help``, and exits with status 2 — no traceback and no
  page of help.
* Positional arguments are refused (every binary takes flags only).
* Library INFO logs (orbax's checkpointing lines, JAX's backend probe) are hidden unless
  ``--verbosity`` asks for them.
"""
from __future__ import annotations

import logging
import sys
from typing import Callable

from absl import app, flags
from absl import logging as absl_logging

EXIT_USAGE = 2


def _quiet_libraries() -> None:
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
        # JAX's "Unable to initialize backend 'tpu'" and similar probe lines.
        for name in ("jax._src.xla_bridge", "jax._src.compiler", "orbax", "absl"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _usage_error(program: str, message: str) -> None:
    print(f"{program}: error: {message}", file=sys.stderr)
    print(f"{program}: run with --help for the flags (--helpfull for every library flag)", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def overrides(names) -> dict:
    """``{name: value}`` of the flags among ``names`` that were given a value (None = not set)."""
    return {k: flags.FLAGS[k].value for k in names if flags.FLAGS[k].value is not None}


def run(main: Callable, module_name: str) -> None:
    """Runs ``main`` under absl with this project's help, usage errors and logging."""
    module = sys.modules[module_name]
    name = getattr(module.__spec__, "name", module_name) if module.__spec__ else module_name
    program = f"python -m {name}" if sys.argv[0].endswith(".py") else sys.argv[0].rsplit("/", 1)[-1]
    # The console script's wrapper is the main module: show this module's flags and docstring as its own.
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    main_module = sys.modules.get("__main__")
    if main_module is not None and main_module is not module and module.__doc__:
        main_module.__doc__ = module.__doc__

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            _usage_error(program, str(e))

    def wrapped(argv):
        _quiet_libraries()
        try:
            if len(argv) > 1:
                raise app.UsageError(f"unexpected arguments: {argv[1:]}")
            return main(argv)
        except app.UsageError as e:
            _usage_error(program, str(e))

    app.run(wrapped, flags_parser=parse)
