"""``vlmrm dataset collect|label``: labelled state datasets for evaluating reward models."""

from __future__ import annotations

import argparse

from vlmrm.cli._env_options import add_option_argument, parse_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dataset",
        help="Collect frames with their simulator states, and label them in a browser.",
        description="Build labelled state datasets: `collect` rolls out a policy and saves frames, states and a "
        "manifest; `label` serves a local page to answer yes / no / skip for each frame.",
    )
    commands = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    collect = commands.add_parser(
        "collect",
        help="Roll out a policy and save frames (PNG), simulator states and a manifest.",
        description="Roll out a random policy or a stable-baselines3 checkpoint (SAC, DQN or PPO .zip, or the "
        "newest good checkpoint of a vlmrm run directory) and save each frame as PNG with the simulator state "
        "that produced it (state vector; qpos/qvel for MuJoCo) in DIR/manifest.jsonl. A progress bar over the "
        "steps shows on stderr. Example: vlmrm dataset collect mountaincar --policy runs/mc --episodes 5 "
        "--every 4 --out data/mc",
    )
    collect.add_argument("env", help="Environment name (cartpole, mountaincar, humanoid, ...).")
    collect.add_argument("--out", required=True, help="Dataset directory (must be empty unless --overwrite).")
    collect.add_argument(
        "--policy",
        default="random",
        help="random (default), a stable-baselines3 .zip (e.g. runs/mc/checkpoints/step_0000100000.zip), or a "
        "vlmrm run directory such as runs/mc (its newest good checkpoint).",
    )
    collect.add_argument("--episodes", type=int, default=5, help="Number of episodes (default: 5).")
    collect.add_argument("--episode-length", type=int, help="Steps per episode (default: the env's).")
    collect.add_argument("--every", type=int, default=1, help="Keep one frame every N steps (default: 1).")
    collect.add_argument("--render-size", type=int, default=224, help="Frame size in pixels (default: 224).")
    collect.add_argument("--seed", type=int, default=0, help="Seed of resets and random actions (default: 0).")
    collect.add_argument("--deterministic", action="store_true", help="Checkpoint policies act deterministically.")
    collect.add_argument(
        "--label-with-detector",
        action="store_true",
        help="Store the env's success detector (info['is_success']) per frame, for studies without a human.",
    )
    collect.add_argument("--task", help="Task name stored with the dataset (e.g. a humanoid pose).")
    collect.add_argument("--textured", action="store_true", help="Shorthand for --option textured=true.")
    add_option_argument(collect, "terminate_at_goal=true")
    collect.add_argument("--overwrite", action="store_true", help="Replace an existing dataset in --out.")
    collect.set_defaults(handler=run_collect)

    label = commands.add_parser(
        "label",
        help="Label a dataset's frames yes / no / skip in a local web page.",
        description="Serve a page on localhost that shows one frame at a time with the task's sentence. Answer "
        "with y / n / s (or the buttons); ← goes back. Every answer is saved at once (atomically) to the labels "
        "file, and labelling resumes at the first unlabelled frame. Example: vlmrm dataset label data/mc "
        "--task mountaincar",
    )
    label.add_argument("dir", help="Dataset directory (from `vlmrm dataset collect`).")
    label.add_argument(
        "--task",
        help="A task name (cartpole, mountaincar, a humanoid task) or a sentence in quotes; "
        "default: the dataset's task or its env's goal.",
    )
    label.add_argument(
        "--labels",
        help="Labels file (default: DIR/labels.json; a relative path is relative to the working directory); "
        "use one file per task, e.g. --labels DIR/labels-lotus.json.",
    )
    label.add_argument("--port", type=int, default=8765, help="Port on 127.0.0.1 (default: 8765; 0: any free port).")
    label.add_argument("--no-browser", action="store_true", help="Do not open a browser; print the address only.")
    label.set_defaults(handler=run_label)


def run_collect(args: argparse.Namespace) -> int:
    from vlmrm.evaluation.dataset import CollectSettings, collect_dataset, policy_checkpoint

    options = parse_options(args.options)
    if args.textured:
        options["textured"] = True
    policy = args.policy
    if policy != "random":
        policy = str(policy_checkpoint(policy))
        if policy != args.policy:  # a run directory: say which of its checkpoints acts
            print(f"policy: {policy} (the newest good checkpoint of {args.policy})", flush=True)
    settings = {name: getattr(args, name) for name in CollectSettings.__dataclass_fields__ if hasattr(args, name)}
    dataset = collect_dataset(
        args.env, args.out, CollectSettings(**{**settings, "policy": policy, "env_options": options})
    )
    message = f"wrote {len(dataset.records)} frames to {dataset.root}"
    if args.label_with_detector:
        positives = sum(1 for r in dataset.records if r.get("is_success"))
        message += f" ({positives} labelled successful by the detector)"
    print(message)
    return 0


def run_label(args: argparse.Namespace) -> int:
    from vlmrm.errors import ConfigError
    from vlmrm.evaluation.dataset import load_dataset, task_sentence
    from vlmrm.evaluation.labelling import serve_labeller

    dataset = load_dataset(args.dir)
    task = args.task or dataset.metadata.get("task") or dataset.env
    if not task:
        raise ConfigError("Give --task: a task name or a sentence that describes the goal.")
    sentence = task_sentence(task, dataset.env or None)
    serve_labeller(args.dir, task, sentence, labels=args.labels, port=args.port, open_browser=not args.no_browser)
    return 0
