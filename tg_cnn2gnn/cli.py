r"""The ``cnn2gnn`` command line (also ``python -m tg_cnn2gnn``).

Subcommands::

    cnn2gnn train-teacher --dataset digits --teacher simple-cnn --teacher-epochs 5 --out runs/digits
    cnn2gnn distill       --dataset digits --epochs 20 --s 10 --out runs/digits   # reuses the teacher above
    cnn2gnn evaluate      runs/digits --mechanism bank batch one_by_one [--which best]
    cnn2gnn benchmark     graph-build --sizes 1000        # runs benchmarks/graph_build.py
    cnn2gnn benchmark --list

Every training option is also a key of a YAML (``.yaml``/``.yml``) or TOML (``.toml``)
file given with ``--config``: keys are the long flag names (``-`` or ``_``), values of the
flag's type (lists for ``head-hidden`` and ``mechanisms``). Keys may also sit in a
section named after the subcommand (``[distill]`` in TOML, ``distill:`` in YAML), which
overrides the top level. Flags given on the command line override the file; the file
overrides the built-in defaults (the paper's settings, see
:class:`tg_cnn2gnn.run.config.Settings`); ``configs/<dataset>/main.yaml`` and ``paper.yaml``
are ready-made files. ``--method kd|dkd|ce`` and ``--student mlp`` run the paper's
baselines through the same run directory.

Each run writes a run directory (``--out``, default ``runs/<dataset>``) with checkpoints,
``metrics.csv``, ``summary.json``, ``table.md`` and ``training_curves.png`` (see
:mod:`tg_cnn2gnn.run.rundir`). The commands themselves live in :mod:`tg_cnn2gnn.run`;
this module only spells their flags. Bad names or values are reported in one line on stderr with
exit code 2; set ``CNN2GNN_DEBUG=1`` to see the full traceback instead.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from tg_cnn2gnn.run.config import (MECHANISM_NAMES, SETTING_FIELDS, WHICH_CHOICES, Settings, SettingsError,
                                   coerce)
from tg_cnn2gnn.run.configfile import load_config

PROG = "cnn2gnn"

DATA_OPTIONS = ("dataset", "root", "download", "check_integrity", "subset", "test_subset", "val_fraction",
                "split_seed")
TEACHER_OPTIONS = ("teacher", "teacher_width", "teacher_epochs", "teacher_batch_size", "teacher_optimizer",
                   "teacher_lr", "teacher_weight_decay", "augment", "scheduler")
MODEL_OPTIONS = ("student", "s", "head_form", "head_hidden", "embedding_channels", "code_scale", "hidden", "conv",
                 "num_layers", "dropout")
DISTILL_OPTIONS = ("method", "alpha", "tau", "kd_scale", "relation_weight", "relation_tau", "graph", "pool_size",
                   "pool_refresh", "graph_nca", "nca_memory", "warm_start_anchors", "dkd_alpha", "dkd_beta",
                   "warmup_epochs", "epochs", "batch_size", "balanced_batches", "optimizer", "lr", "momentum",
                   "weight_decay", "cache_teacher_logits")
EVAL_OPTIONS = ("mechanisms", "val_mechanism", "bank_size", "eval_batch_size", "eval_seed", "label_vote", "measure")
RUN_OPTIONS = ("out", "seed", "device", "threads", "resume", "progress")

TRAIN_TEACHER_OPTIONS = DATA_OPTIONS + TEACHER_OPTIONS + ("retrain_teacher", "measure", "out", "seed", "device",
                                                          "threads", "progress")
DISTILL_ALL_OPTIONS = (DATA_OPTIONS + TEACHER_OPTIONS + ("teacher_checkpoint", "retrain_teacher") + MODEL_OPTIONS
                       + DISTILL_OPTIONS + EVAL_OPTIONS + RUN_OPTIONS)
#: Options of the example scripts (``examples/<dataset>.py``): everything but the dataset.
EXAMPLE_OPTIONS = tuple(o for o in DISTILL_ALL_OPTIONS if o != "dataset")

GROUPS = (("data", DATA_OPTIONS), ("teacher", TEACHER_OPTIONS + ("teacher_checkpoint", "retrain_teacher")),
          ("student model", MODEL_OPTIONS), ("distillation", DISTILL_OPTIONS), ("evaluation", EVAL_OPTIONS),
          ("run", RUN_OPTIONS))


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (exit code 2), no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (lists as ``a b``); keeps the description's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if "%(default)" in help or "(default" in help or action.default is argparse.SUPPRESS:
            return help
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return help
        default = action.default
        if isinstance(default, (list, tuple)):
            shown = " ".join(map(str, default))
        elif default is None:
            shown = "none"
        else:
            shown = str(default)
        return f"{help} (default: {shown.replace('%', '%%')})"


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_option(group: Any, name: str, default: Any) -> None:
    f = SETTING_FIELDS[name]
    kind: str = f.metadata["kind"]
    base = kind.rstrip("?")
    kw: dict[str, Any] = {"dest": name, "default": default, "help": f.metadata["help"]}
    choices = f.metadata.get("choices")
    if base == "int":
        kw.update(type=int, metavar="N")
    elif base == "float":
        kw.update(type=float, metavar="X")
    elif base == "str":
        kw.update(type=str, metavar=name.split("_")[-1].upper())
        if choices:
            kw.update(choices=choices, metavar="{" + ",".join(choices) + "}")
    elif base == "bool":
        kw.update(action=argparse.BooleanOptionalAction)
    elif base == "ints":
        kw.update(type=int, nargs="+", metavar="N")
    elif base == "strs":
        kw.update(type=str, nargs="+", metavar="NAME")
        if choices:
            kw.update(choices=choices, metavar="NAME", help=f"{kw['help']}; any of: {', '.join(choices)}")
    names = [flag(name)]
    if name == "mechanisms":
        names.append("--mechanism")
    group.add_argument(*names, **kw)


def add_settings_options(parser: argparse.ArgumentParser, names: Sequence[str],
                         defaults: dict[str, Any] | None = None) -> None:
    """Add one flag per setting in ``names`` (grouped), with ``defaults`` overriding :class:`Settings`'."""
    base = Settings(**(defaults or {})) if defaults else Settings()
    wanted = set(names)
    for title, group_names in GROUPS:
        present = [n for n in group_names if n in wanted]
        if not present:
            continue
        group = parser.add_argument_group(f"{title} options")
        for n in present:
            _add_option(group, n, getattr(base, n))
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML or TOML file of settings (keys = long flag names); flags override it")
    parser.set_defaults(_settings_names=tuple(names), _base_defaults=dict(defaults or {}))


def make_parser_for(names: Sequence[str], defaults: dict[str, Any], *, prog: str,
                    description: str | None = None) -> argparse.ArgumentParser:
    """A stand-alone parser with the flags of ``names`` (the example scripts use it)."""
    parser = OneLineParser(prog=prog, description=description, formatter_class=HelpFormatter)
    add_settings_options(parser, names, defaults)
    return parser


# ------------------------------------------------------------------------------------- settings
def build_settings(parser: argparse.ArgumentParser, argv: Sequence[str], command: str | None = None,
                   ) -> Settings:
    """Parse ``argv`` with ``--config`` applied under the flags; return validated-type :class:`Settings`
    (ranges and names are checked later by :func:`tg_cnn2gnn.run.config.validate`)."""
    args = parser.parse_args(argv)
    if args.config:
        config = load_config(args.config, command)
        names = set(args._settings_names)
        values = {k: coerce(k, v, source=str(args.config)) for k, v in config.items()
                  if k in names and k in SETTING_FIELDS}
        parser.set_defaults(**values)
        args = parser.parse_args(argv)
        base = {k: coerce(k, v, source=str(args.config)) for k, v in config.items()
                if k in SETTING_FIELDS and k not in names}
    else:
        base = {}
    return settings_from_args(args, base)


def settings_from_args(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    # config keys without a flag here first; then the caller's fixed values (an example's dataset); then flags
    values = dict(extra or {})
    values.update(args._base_defaults)
    values.update({n: getattr(args, n) for n in args._settings_names})
    return Settings(**{k: coerce(k, v) for k, v in values.items()})


def fail(prog: str, error: BaseException, code: int = 2) -> int:
    """Print ``prog: error: <one line>`` on stderr and return ``code``."""
    msg = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, KeyError):
        msg = f"missing key {msg}"
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return code


# ------------------------------------------------------------------------------------- benchmarks
def benchmarks_dir() -> Path | None:
    """The repository's ``benchmarks/`` folder (next to the package, or in the working directory)."""
    for cand in (Path(__file__).resolve().parent.parent / "benchmarks", Path.cwd() / "benchmarks"):
        if cand.is_dir():
            return cand
    return None


def list_benchmarks() -> dict[str, tuple[Path, str]]:
    """``{name: (script, first docstring line)}``; names are file stems with ``-`` for ``_``."""
    folder = benchmarks_dir()
    out: dict[str, tuple[Path, str]] = {}
    if folder is None:
        return out
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ""
        try:
            import ast
            doc = (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip().splitlines()[0]
        except (SyntaxError, OSError, IndexError, UnicodeDecodeError):
            pass
        out[path.stem.replace("_", "-")] = (path, doc)
    return out


# ------------------------------------------------------------------------------------- parser
def make_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``cnn2gnn`` parser and its subcommand parsers."""
    parser = OneLineParser(prog=PROG, formatter_class=HelpFormatter,
                           description="CNN2GNN: distil a CNN teacher into a two-layer GNN student through a "
                                       "learned sparse graph (Jiao, Zhang and Li, 2024).",
                           epilog="Run `cnn2gnn <command> --help` for the options of a command.")
    from tg_cnn2gnn import __version__
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)
    subs: dict[str, argparse.ArgumentParser] = {}

    p = sub.add_parser("train-teacher", formatter_class=HelpFormatter, help="pre-train the CNN teacher",
                       description="Pre-train the CNN teacher with cross-entropy (paper Algorithm 2, line 3) into "
                                   "<out>/teacher; `distill` with the same --out and teacher settings reuses it.")
    add_settings_options(p, TRAIN_TEACHER_OPTIONS)
    subs["train-teacher"] = p

    p = sub.add_parser("distill", formatter_class=HelpFormatter,
                       help="distil a CNN teacher into a GNN student (trains the teacher first if needed)",
                       description="Teacher (from --teacher-checkpoint, cached in the run directory, or trained "
                                   "now) -> CNN2GNN distillation -> test accuracy, parameters, FLOPs, latency. "
                                   "Defaults are the paper's settings (s=50, alpha=1, batch 100, 200 epochs, "
                                   "lr 0.01, head 512-256, 2-layer GCN); tau=4 with tau^2 scaling.")
    add_settings_options(p, DISTILL_ALL_OPTIONS)
    subs["distill"] = p

    p = sub.add_parser("evaluate", formatter_class=HelpFormatter,
                       help="test accuracy of a distilled run under chosen inference mechanisms",
                       description="Rebuild the student of a run directory (settings.json) and test it under "
                                   "the chosen mechanisms: bank (ours, batch-invariant), batch (paper "
                                   "Mechanism 2), one_by_one (Mechanism 1), direct (embedding head only).")
    p.add_argument("run", metavar="RUN", help="run directory of `cnn2gnn distill`, or a checkpoint file in one")
    p.add_argument("--mechanism", "--mechanisms", dest="mechanisms", nargs="+", choices=MECHANISM_NAMES,
                   metavar="NAME", default=None,
                   help=f"inference mechanisms, any of: {', '.join(MECHANISM_NAMES)} (default: those of the run)")
    p.add_argument("--which", choices=WHICH_CHOICES, default="last",
                   help="weights of the last epoch (checkpoint.pt) or of the best validation epoch (best.pt); "
                        "ignored when RUN is a checkpoint file")
    for name in ("root", "bank_size", "eval_batch_size", "eval_seed", "device", "threads"):
        _add_option(p, name, None)
        action = p._option_string_actions[flag(name)]
        action.help = re.sub(r" \(default: [^)]*\)", "", action.help or "") + " (default: the run's setting)"
    p.add_argument("--config", metavar="FILE", default=None, help="YAML or TOML file with any of these options")
    subs["evaluate"] = p

    from tg_cnn2gnn.cli_serve import add_serve_commands
    add_serve_commands(sub, subs, HelpFormatter)

    names = list_benchmarks()
    listing = "; ".join(f"{n}: {doc}" if doc else n for n, (_, doc) in names.items()) or "none found"
    p = sub.add_parser("benchmark", formatter_class=HelpFormatter, help="run a script of benchmarks/ by name",
                       description=f"Run benchmarks/<name>.py with the remaining arguments. Available: {listing}.")
    p.add_argument("name", nargs="?", default=None, help="benchmark name (see --list)")
    p.add_argument("--list", action="store_true", help="list the available benchmarks and exit")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed on to the script")
    subs["benchmark"] = p
    return parser, subs


# ------------------------------------------------------------------------------------- commands
def _cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    from tg_cnn2gnn.report import fmt_acc
    from tg_cnn2gnn.run.commands import evaluate_run, reference_accuracies
    if args.config:
        cfg = load_config(args.config, "evaluate")
        allowed = {"mechanisms", "which", "root", "bank_size", "eval_batch_size", "eval_seed", "device", "threads"}
        values = {k: (v if k == "which" else coerce(k, v, source=str(args.config)))
                  for k, v in cfg.items() if k in allowed}
        parser.set_defaults(**values)
        args = parser.parse_args(argv)
    result = evaluate_run(args.run, mechanisms=args.mechanisms, which=args.which, root=args.root,
                          bank_size=args.bank_size, eval_batch_size=args.eval_batch_size, eval_seed=args.eval_seed,
                          device=args.device, threads=args.threads, log=lambda m: print(m, file=sys.stderr))
    try:
        ref = reference_accuracies(result)
    except SettingsError as e:   # a damaged summary.json: the result is still shown
        print(f"{PROG} evaluate: warning: {e}", file=sys.stderr)
        ref = {}
    epoch = result.get("epoch")
    print(f"{result['checkpoint']} (epoch {epoch + 1 if isinstance(epoch, int) else '?'}), "
          f"{result['n_test']} test images, bank of {result['bank_size']} (seed {result['eval_seed']})")
    print("| mechanism | test accuracy | in summary.json |")
    print("|---|---|---|")
    for mech, acc in result["mechanisms"].items():
        print(f"| {mech} | {fmt_acc(acc)} | {fmt_acc(ref.get(mech))} |")
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    names = list_benchmarks()
    if args.list or args.name is None:
        if not names:
            print("no benchmarks found: benchmarks/<name>.py scripts are part of the source checkout "
                  "(none found next to the package or in the working directory)")
        for n, (path, doc) in names.items():
            print(f"{n:24s} {doc}")
        if args.name is None and not args.list:
            print(f"{PROG} benchmark: error: give a benchmark name (listed above) or --list", file=sys.stderr)
            return 2
        return 0
    name = args.name.strip().lower().replace("_", "-").removesuffix(".py")
    if name not in names:
        valid = ", ".join(names) or "none found (benchmarks/ is part of the source checkout)"
        raise SettingsError(f"unknown benchmark {args.name!r}; available: {valid}")
    script = names[name][0]
    rest = list(args.args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    return subprocess.call([sys.executable, str(script), *rest])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cnn2gnn`` command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subs = make_parser()
    args = parser.parse_args(argv)
    cmd = args.command
    prog = f"{PROG} {cmd}"
    sub_argv = argv[argv.index(cmd) + 1:]
    try:
        if cmd == "benchmark":
            return _cmd_benchmark(args)
        if cmd == "evaluate":
            return _cmd_evaluate(args, subs["evaluate"], sub_argv)
        if cmd in ("export", "predict"):
            from tg_cnn2gnn.cli_serve import run_serve_command
            return run_serve_command(args)
        from tg_cnn2gnn.run.commands import run_distill, run_train_teacher
        settings = build_settings(subs[cmd], sub_argv, cmd)
        if cmd == "train-teacher":
            run_train_teacher(settings)
            return 0
        summary = run_distill(settings)
        print()
        print(summary["table"])
        return 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (SettingsError, ValueError, TypeError, FileNotFoundError, KeyError, NotADirectoryError,
            IsADirectoryError, PermissionError) as e:
        if os.environ.get("CNN2GNN_DEBUG"):
            raise
        return fail(prog, e)
    except (FloatingPointError, RuntimeError, OSError) as e:
        if os.environ.get("CNN2GNN_DEBUG"):
            raise
        return fail(prog, e, code=1)


# ------------------------------------------------------------------------------------- examples
def example_main(config: str | os.PathLike, argv: Sequence[str] | None = None, *,
                 description: str | None = None) -> int:
    """Entry point of ``examples/<dataset>.py``: teacher -> distillation -> evaluation with the
    settings of ``config`` (a YAML/TOML file naming the dataset), overridable by flags and
    by ``--config``; prints the teacher-vs-student table. Returns the exit code (2 for bad
    settings or missing data, with one line on stderr)."""
    from tg_cnn2gnn.run.commands import run_distill
    config = Path(config)
    prog = os.path.basename(sys.argv[0]) if argv is None else f"examples/{config.parent.name.replace('-', '_')}.py"
    try:
        defaults = {k: v for k, v in load_config(config, "example").items() if k in SETTING_FIELDS}
        if "dataset" not in defaults:
            raise SettingsError(f"config file {config}: names no dataset")
        parser = make_parser_for(EXAMPLE_OPTIONS, defaults, prog=prog, description=description)
        settings = build_settings(parser, list(sys.argv[1:] if argv is None else argv), "distill")
        summary = run_distill(settings)
    except (SettingsError, FileNotFoundError, ValueError, TypeError) as e:
        return fail(prog, e)
    print()
    print(summary["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
