"""Train one Not-so-Clevr toy task: conv vs CoordConv on the uniform or quadrant split.

Example: python scripts/train_toy.py --task classification --split quadrant --model coordconv
Stops when the test metric reaches the task's target (classification: accuracy 1.0; rendering:
IoU 1.0; regression: pixel distance below 0.5) unless --no-early-stop. Writes OUT/results.json
and TensorBoard events in OUT. Defaults per task and model: configs/toy/<task>.yaml.
"""

from __future__ import annotations

import argparse

from common.errors import ArgumentParser, run_cli


def main() -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="classification, regression or rendering")
    p.add_argument("--split", default="uniform", help="uniform (2,368/768) or quadrant (2,407/729)")
    p.add_argument("--model", default="coordconv", help="coordconv or conv (the release's nets)")
    p.add_argument("--epochs", type=int, help="most epochs to train (config default)")
    p.add_argument("--lr", type=float, help="Adam learning rate (config default)")
    p.add_argument("--batch-size", type=int, help="minibatch size (config default)")
    p.add_argument("--l2", type=float, help="L2 weight on kernels, l2 * sum(w^2) (config default)")
    p.add_argument("--seed", type=int, default=0, help="seed of init and shuffling (0)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (auto: cuda if available)")
    p.add_argument("--target", type=float, help="test metric that counts as solved")
    p.add_argument("--schedule", help="constant or cosine (to 0 over --epochs) (config default)")
    p.add_argument(
        "--checks-per-epoch", type=int, help="test the target this often per epoch (config default)"
    )
    p.add_argument(
        "--raw-input",
        action="store_true",
        help="feed (x, y) as 4..59 as released (default [-1, 1])",
    )
    p.add_argument(
        "--interm-loss",
        help="none or softmax: also train the CoordConv renderer's classifier on the one-hot "
        "centre, a release option (config default)",
    )
    p.add_argument("--no-early-stop", action="store_true", help="train every epoch")
    p.add_argument("--out", help="output folder (runs/toy/<task>_<split>_<model>_s<seed>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args()

    from common.devices import resolve_device
    from supervised.toy.trainer import ToySettings, train_toy

    settings = ToySettings(
        task=args.task,
        split=args.split,
        model=args.model,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        l2=args.l2,
        seed=args.seed,
        schedule=args.schedule,
        checks_per_epoch=args.checks_per_epoch,
        raw_input=args.raw_input,
        interm_loss=args.interm_loss,
        target=args.target,
        early_stop=not args.no_early_stop,
        out=args.out,
        progress=not args.no_progress,
    )
    device = resolve_device(args.device)
    settings.out = args.out or f"runs/toy/{args.task}_{args.split}_{args.model}_s{args.seed}"
    r = train_toy(settings, device)
    metric = r["metric"]
    reached = (
        f"target {r['target']} reached at epoch {r['epochs_to_target']} "
        f"({r['seconds_to_target']:.1f} s)"
        if r["epochs_to_target"]
        else f"target {r['target']} not reached"
    )
    print(
        f"{r['task']}/{r['split']}/{r['model']} ({r['params']:,} params): test {metric} "
        f"{r['test'][metric]:.4f}, train {metric} {r['train'][metric]:.4f} after {r['epochs']} "
        f"epochs, {r['seconds']:.1f} s; {reached}; {settings.out}/results.json"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
