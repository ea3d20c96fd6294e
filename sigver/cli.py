"""The ``sigver`` command line: one entry point, one sub-command per module.

Each module listed in :data:`COMMANDS` exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Modules keep heavy imports
(torch, sklearn) inside ``run`` so that ``sigver --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from sigver import __version__
from sigver.errors import SigverError

logger = logging.getLogger("sigver")

#: Sub-command modules, in the order ``sigver --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "sigver.commands.datasets",
    "sigver.commands.preprocess",
    "sigver.commands.synth",
    "sigver.commands.train",
    "sigver.commands.features",
    "sigver.commands.export",
    "sigver.commands.evaluate",
    "sigver.commands.calibrate",
    "sigver.commands.compare",
    "sigver.commands.enroll",
    "sigver.commands.verify",
    "sigver.commands.users",
    "sigver.commands.keys",
    "sigver.commands.audit",
    "sigver.commands.serve",
    "sigver.commands.demo",
)

#: Exit status for errors the user can fix (bad input, missing file...).
EXIT_USER_ERROR = 2


def _add_verbosity(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Sub-command copies default to SUPPRESS so that `sigver -q verify ...` is not
    # reset by the sub-parser, while `sigver verify ... -q` works too.
    group = parser.add_mutually_exclusive_group()
    extra: dict[str, object] = {} if top else {"default": argparse.SUPPRESS}
    group.add_argument("-v", "--verbose", action="store_true", help="debug logging", **extra)
    group.add_argument(
        "-q", "--quiet", action="store_true", help="warnings and errors only", **extra
    )


def _sub_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found.append(child)
                found.extend(_sub_parsers(child))
    return found


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command.

    ``-v`` / ``-q`` are accepted before or after the sub-command (also after
    nested actions such as ``keys create``).
    """
    parser = argparse.ArgumentParser(
        prog="sigver",
        description="Offline handwritten signature verification (SigNet features + per-user SVMs).",
    )
    parser.add_argument("--version", action="version", version=f"sigver {__version__}")
    _add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS:
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    for child in _sub_parsers(parser):
        _add_verbosity(child, top=False)
    return parser


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Send sigver's log records to stderr at the requested level."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("sigver")
    if not any(getattr(h, "_sigver", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler._sigver = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for name in ("enrollment",):
        logging.getLogger(name).handlers = root.handlers
        logging.getLogger(name).setLevel(level)
    # OpenCV's native logger writes "[ WARN:0@...] grfmt_tiff.cpp ..." straight to
    # stderr for harmless TIFF quirks (unknown tags); it reads this variable when
    # cv2 is first imported, which every command does after this point.
    if not verbose:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        0 on success, :data:`EXIT_USER_ERROR` for errors the user can fix,
        and command-specific codes otherwise (``verify`` returns 1 on reject).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help (0) and on bad arguments (2, its message already on
        # stderr); main(argv) returns the code instead, so callers embedding the CLI
        # need not catch SystemExit.
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    configure_logging(args.verbose, args.quiet)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args._run(args))
    except SigverError as exc:
        hint = getattr(exc, "cli_hint", None)
        logger.error("%s", f"{exc} ({hint})" if hint else exc)
        return EXIT_USER_ERROR
    except (
        FileExistsError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    ) as exc:
        # A path the user named (--out in a missing or read-only folder, a file where a
        # folder is expected): say which, without a traceback.
        where = f": {exc.filename}" if exc.filename else ""
        logger.error("%s%s", exc.strerror or exc, where)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130


def entry_point() -> None:
    """Console-script wrapper around :func:`main`.

    A reader that closes the pipe early (``sigver ... | head -n1``) ends the
    command quietly with status 141 (128 + SIGPIPE, what a shell tool killed by
    SIGPIPE reports) instead of a BrokenPipeError traceback.
    """
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that
        # flush cannot raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    sys.exit(status)


if __name__ == "__main__":
    entry_point()
