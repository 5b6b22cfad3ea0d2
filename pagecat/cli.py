"""The ``pagecat`` command: one subcommand per stage, ``run``, ``demo`` and ``config show``.

Exit status: 0 on success, 2 on bad usage, config or paths (one line naming the field or file
and the fix), 1 on a failure during work (naming the stage and the cause).
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from pagecat import __version__
from pagecat.errors import StageError, UsageError
from pagecat.stages import STAGE_ORDER

STAGE_HELP = {
    "crawl": "fetch seed sites politely into WARC files (raw/) and a crawl log",
    "parse": "WARC, HTML folders or tables -> clean text and metadata (pages/)",
    "dedup": "drop duplicate pages (dedup/pages/, duplicates/)",
    "label": "build docs and attach labels (docs/<version>/)",
    "features": "TF-IDF features for every doc (features/)",
    "train": "train and compare classifiers on the tagged docs (models/)",
    "predict": "label the untagged docs with a trained model (predictions/)",
    "report": "write report.html and report.pdf from the run's datasets and manifests",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as for every other usage error
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _overrides(pairs: list[str], args: argparse.Namespace) -> dict:
    """``--set section.key=value`` (value read as YAML) and the shortcut flags, as overrides."""
    out: dict = {}

    def put(dotted: str, value) -> None:
        section, _, rest = dotted.partition(".")
        if not rest:
            raise UsageError(f"--set {dotted}: expected section.key=value, e.g. crawl.max_depth=2")
        node = out.setdefault(section, {})
        *path, last = rest.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value

    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise UsageError(f"--set {pair}: expected section.key=value, e.g. crawl.max_depth=2")
        put(key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    if getattr(args, "run_dir", None):
        put("run.dir", args.run_dir)
    if getattr(args, "scheduler", None):
        put("cluster.scheduler", args.scheduler)
    if getattr(args, "workers", None):
        put("cluster.n_workers", args.workers)
    return out


def _load(args: argparse.Namespace):
    from pagecat.config import load_config

    return load_config(args.config, _overrides(args.set or [], args))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="YAML config file (every field has a default)")
    common.add_argument("--run-dir", help="run directory (overrides run.dir)")
    common.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    common.add_argument("--workers", type=int, help="LocalCluster workers (default: one per core)")
    common.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one config field, e.g. --set crawl.max_depth=2 (repeatable)")

    p = _Parser(prog="pagecat", description="Raw web content to a trained category classifier and a report.")
    p.add_argument("--version", action="version", version=f"pagecat {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in STAGE_ORDER:
        sp = sub.add_parser(name, parents=[common], help=STAGE_HELP[name], description=STAGE_HELP[name])
        sp.add_argument("--force", action="store_true", help="run again even if inputs and config are unchanged")
    rp = sub.add_parser("run", parents=[common], help="run every stage that applies, from one config")
    rp.add_argument("--from", dest="start", choices=STAGE_ORDER, help="first stage to run")
    rp.add_argument("--to", dest="stop", choices=STAGE_ORDER, help="last stage to run")
    rp.add_argument("--force", action="store_true", help="run stages again even if unchanged")
    dp = sub.add_parser("demo", parents=[common],
                        help="the whole pipeline on the bundled WebKB sample, crawled through a local replay proxy")
    dp.add_argument("--pages", type=int, help="use a stratified subset of this many sample pages")
    dp.add_argument("--holdout", default="cornell", help="university group kept untagged (default: cornell)")
    cp = sub.add_parser("config", help="inspect the configuration")
    csub = cp.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser)
    csub.required = True
    csub.add_parser("show", parents=[common], help="print the effective config, defaults included, as YAML")
    return p


def _dispatch(args: argparse.Namespace) -> None:
    if args.command == "config":
        print(_load(args).to_yaml(), end="")
        return
    if args.command == "demo":
        from pagecat.demo import run_demo

        run_demo(run_dir=args.run_dir or "runs/demo", pages=args.pages, holdout=args.holdout,
                 config_path=args.config, overrides=_overrides(args.set or [], args))
        return
    from pagecat.pipeline import Pipeline

    cfg = _load(args)
    with Pipeline(cfg) as pipeline:
        if args.command == "run":
            pipeline.run(args.start, args.stop, force=args.force)
        else:
            pipeline.run_stage(args.command, force=args.force)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _dispatch(args)
    except UsageError as e:
        print(f"pagecat: error: {e}", file=sys.stderr)
        return 2
    except StageError as e:
        print(f"pagecat: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pagecat: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("PAGECAT_TRACEBACK"):
            raise
        print(f"pagecat: {args.command} failed: {type(e).__name__}: {e} "
              "(set PAGECAT_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 1
    return 0
