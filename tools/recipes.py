"""The 25 named recipes (data/recipes.yaml): list them, show one, run one as a named DVC experiment.

Every model of the seed project's story and each choice it learned from is a recipe: a
complete set of overrides over params.yaml, at two scales. `mini` is the CPU miniature (the
shipped sample corpus, the offline generator, a tiny model: minutes on 2 cores); `real` is the
same recipe at the seed's scale (MediaWiki API, a helper LLM server, one GPU).

A recipe runs as `dvc exp run -n <name>[-mini] -S key=value ...`. The overrides are checked
first (unknown keys, wrong types, a variant whose vocabulary is not the tokenizer's, a context
above the variant's) and nothing runs when one fails. Because `dvc exp run` starts from the
workspace's params.yaml, `run` refuses a params.yaml that differs from the last commit (a
previous experiment's values would leak into this one) unless --allow-modified-params.

Examples:
  python -m tools.recipes list
  python -m tools.recipes show contrastive-no-swap --scale real
  python -m tools.recipes run contrastive-no-swap              # the miniature, in the workspace
  python -m tools.recipes run padded --queue && dvc queue start # queued: runs in its own copy
  python -m tools.recipes run ww2-183m --scale real --set generate.openai.base_url=http://gpu:8000/v1
  python -m tools.recipes check                                # every recipe at both scales
"""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
import textwrap

import yaml

from common.cli import setup_logging
from common.params import ParamsError, read_params
from experiments.recipes import (
    SCALES,
    RecipeError,
    experiment_name,
    load_registry,
    resolve,
    set_arguments,
)

log = logging.getLogger("recipes")


def parse_set(pairs: list[str]) -> dict:
    extra = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RecipeError(f"--set {pair!r}: expected key=value")
        extra[key.strip()] = yaml.safe_load(value)
    return extra


def params_modified(path: str) -> bool:
    """Does params.yaml differ from the last commit (outside git: no)?"""
    done = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", path], capture_output=True)
    return done.returncode == 1


def dvc_command(args, overrides: dict) -> list[str]:
    mode = ["--queue"] if args.queue else ["--temp"] if args.temp else []
    command = ["dvc", "exp", "run", "-n", experiment_name(args.name, args.scale), *mode]
    for pair in set_arguments(overrides):
        command += ["-S", pair]
    return command


def cmd_list(args, registry) -> int:
    width = max(len(name) for name in registry.recipes)
    for recipe in registry.recipes.values():
        print(f"{recipe.name:{width}s}  {recipe.description}")
        if args.findings:
            print(textwrap.indent(textwrap.fill(recipe.finding, 96), " " * (width + 4)))
    print(f"{len(registry.recipes)} recipes; `show NAME` gives a recipe's overrides")
    return 0


def cmd_show(args, registry) -> int:
    recipe = registry.get(args.name)
    overrides = resolve(registry, args.name, args.scale, read_params(args.params), parse_set(args.set))
    print(f"# {recipe.name} ({args.scale}): {recipe.description}")
    print(textwrap.fill(f"# finding: {recipe.finding}", 100, subsequent_indent="#   "))
    print(yaml.safe_dump(overrides, sort_keys=False, default_flow_style=None, width=100).rstrip())
    print("# runs as:", shlex.join(dvc_command(args, overrides)))
    return 0


def cmd_run(args, registry) -> int:
    overrides = resolve(registry, args.name, args.scale, read_params(args.params), parse_set(args.set))
    if params_modified(args.params) and not args.allow_modified_params:
        raise RecipeError(
            f"{args.params} differs from the last commit (a previous `dvc exp run -S` leaves its values "
            f"there): `git checkout {args.params}` first, or pass --allow-modified-params"
        )
    command = dvc_command(args, overrides)
    log.info("run %s", shlex.join(command))
    if args.dry_run:
        print(shlex.join(command))
        return 0
    return subprocess.run(command).returncode


def cmd_check(args, registry) -> int:
    params = read_params(args.params)
    failures = 0
    for name in registry.recipes:
        for scale in SCALES:
            try:
                resolve(registry, name, scale, params)
            except RecipeError as exc:
                failures += 1
                print(f"FAIL {exc}")
    print(f"{len(registry.recipes)} recipes x {len(SCALES)} scales checked, {failures} failed")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="every recipe with its description")
    listing.add_argument("--findings", action="store_true", help="also what each recipe reproduces")
    for name, help_text in (("show", "a recipe's resolved overrides"), ("run", "run a recipe as a DVC experiment")):
        one = sub.add_parser(name, help=help_text)
        one.add_argument("name")
        one.add_argument("--scale", choices=SCALES, default="mini")
        one.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an extra override")
        where = one.add_mutually_exclusive_group()
        where.add_argument("--queue", action="store_true", help="queue it (dvc queue start runs it)")
        where.add_argument("--temp", action="store_true", help="run it in a temporary copy of the workspace")
        if name == "run":
            one.add_argument("--dry-run", action="store_true", help="print the dvc command, run nothing")
            one.add_argument("--allow-modified-params", action="store_true")
    sub.add_parser("check", help="check every recipe at both scales against params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    commands = {"list": cmd_list, "show": cmd_show, "run": cmd_run, "check": cmd_check}
    try:
        return commands[args.command](args, load_registry())
    except (RecipeError, ParamsError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
