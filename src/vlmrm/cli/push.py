"""``vlmrm push RUN --repo ID``: share a run on the Hugging Face Hub (``--dry-run DIR``: write the folder only)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="Share a run on the Hugging Face Hub: checkpoint, config, video and a model card.",
        description="Upload a run to a Hugging Face Hub model repository (created if needed), as rl-baselines3-zoo "
        "shares agents: model.zip (one checkpoint), config.yaml, summary.json, replay.mp4 (the newest policy video) "
        "and a model card with the prompts, the reward model and the results; once downloaded, vlmrm enjoy DIR "
        "--checkpoint DIR/model.zip watches it. Log in first (hf auth login or $HF_TOKEN). "
        "Example: vlmrm push runs/cartpole-20240101-120000 --repo you/cartpole-vlm",
    )
    parser.add_argument("run_dir", metavar="RUN", help="A run directory of vlmrm train.")
    parser.add_argument("--repo", metavar="ID", help="The Hub model repository, e.g. you/cartpole-vlm.")
    parser.add_argument(
        "--checkpoint",
        metavar="best|final|STEP",
        help="Which checkpoint to share: best, final (the newest good one) or a step; default: the best where the "
        "run has one, else the newest good checkpoint.",
    )
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument(
        "--dry-run",
        metavar="DIR",
        help="Write the folder that would be uploaded into DIR (new or empty) and upload nothing.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vlmrm.errors import ConfigError
    from vlmrm.push import push_run, write_push_folder

    if args.dry_run is not None:
        folder = write_push_folder(args.run_dir, args.dry_run, args.checkpoint, args.repo)
        files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        print(f"wrote {folder} (nothing uploaded): {', '.join(files)}")
        return 0
    if args.repo is None:
        raise ConfigError("Give the Hub repository with --repo ID (e.g. --repo you/cartpole-vlm), or --dry-run DIR.")
    url = push_run(args.run_dir, args.repo, args.checkpoint, private=args.private)
    print(f"pushed {args.run_dir} to https://huggingface.co/{args.repo} ({url})")
    return 0
