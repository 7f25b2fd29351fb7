"""The argument parser of every entry point: no abbreviations, and an unknown flag named.

argparse by default takes `--purge` for `--purge_clusters` and `--print_cluster` for
`--print_clusters`: a typo can run a teardown. And an unknown flag next to a required command
gets "one of the arguments ... is required", which never names the flag. Here both are an error
that names the flag and the closest known one.
"""
from __future__ import annotations

import argparse
import difflib


class LabParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        import sys
        argv = list(sys.argv[1:] if args is None else args)
        for token in argv:
            if token == "--":
                break
            if not token.startswith("--"):
                continue
            flag = token.split("=", 1)[0]
            if flag not in self._option_string_actions:
                self.error(self.unknown(flag))
        return super().parse_known_args(argv, namespace)

    def unknown(self, flag: str) -> str:
        known = sorted(o for o in self._option_string_actions if o.startswith("--"))
        # An abbreviation first (--purge: --purge_clusters), then the nearest spelling.
        close = [o for o in known if o.startswith(flag)][:3] or difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
        hint = f": did you mean {' or '.join(close)}?" if close else ""
        return f"unknown option {flag}{hint}"

    def error(self, message: str):
        """The one line of what is wrong (not the whole usage, which buries it), and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n(python -m {self.prog.removeprefix('python -m ')} --help lists "
                     "every option)\n")


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def interruptible(prog: str, run) -> int:
    """`run()`, with Ctrl-C as one line and exit 130 instead of a traceback. Nothing half-written
    stays: a ledger transaction in progress is rolled back as the interrupt unwinds it, and
    files are written to a temporary name and renamed only when complete."""
    import sys
    try:
        return run()
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted (Ctrl-C): stopped; what it had not committed was rolled back, so nothing "
              "half-written was kept; run it again to finish", file=sys.stderr)
        # Out now, with 130: a worker thread may still wait on the workspace (the interpreter would
        # join it at exit), and CPython can turn an interrupted run's exit into its own SIGINT (-2).
        import logging
        import os
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
