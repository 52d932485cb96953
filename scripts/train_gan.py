"""Train a conv or CoordConv GAN on clevr (two coloured objects) or square (Not-so-Clevr) and
measure its mode collapse: validity, coverage and JS divergence of the generated objects'
positions (supervised/gan/mode_collapse.py).

Example: python scripts/train_gan.py --data clevr --model coordconv --epochs 5 --images 5000
Writes TensorBoard events (loss/d, loss/g, measure/validity|coverage|js, a sample grid each
epoch), OUT/checkpoint.pt (each epoch and on Ctrl-C, atomically), OUT/results.json (the final
measures, parameters, seconds, settings, per-epoch history), OUT/samples.png (8x8 samples) and
OUT/interpolation.png (rows: straight lines in z between random pairs).
"""

from __future__ import annotations

import argparse

from common.errors import ArgumentParser, run_cli


def main() -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="clevr", help="clevr or square (clevr)")
    p.add_argument("--model", default="coordconv", help="conv or coordconv (coordconv)")
    p.add_argument("--epochs", type=int, default=50, help="epochs (50, the release's)")
    p.add_argument("--images", type=int, help="training images (all: clevr 50,000, square 3,136)")
    p.add_argument("--batch-size", type=int, default=16, help="images per step (16)")
    p.add_argument("--lr-d", type=float, default=1e-4, help="discriminator Adam rate (1e-4)")
    p.add_argument("--lr-g", type=float, default=5e-4, help="generator Adam rate (5e-4)")
    p.add_argument("--g-steps", type=int, default=2, help="G updates per batch (2, as released)")
    p.add_argument("--z-dim", type=int, default=256, help="latent size, z ~ U(-1, 1) (256)")
    p.add_argument("--width", type=float, default=1.0, help="hidden-channel multiplier (1.0)")
    p.add_argument("--coord-init", default="balanced",
                   help="CoordConv G first layer: balanced (z and coordinates each He over their "
                        "own fan-in) or release (one fan-in for all) (balanced)")  # fmt: skip
    p.add_argument("--eval-samples", type=int, default=1000, help="samples measured per epoch")
    p.add_argument("--seed", type=int, default=0, help="seed of init, data, shuffling and z")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (auto: cuda if available)")
    p.add_argument("--out", help="output folder (runs/gan/<data>_<model>_s<seed>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args()

    from common.devices import resolve_device
    from supervised.gan.trainer import GanSettings, train_gan

    settings = GanSettings(
        data=args.data,
        model=args.model,
        epochs=args.epochs,
        images=args.images,
        batch_size=args.batch_size,
        seed=args.seed,
        lr_d=args.lr_d,
        lr_g=args.lr_g,
        g_steps=args.g_steps,
        z_dim=args.z_dim,
        width=args.width,
        coord_init=args.coord_init,
        eval_samples=args.eval_samples,
        out=args.out or f"runs/gan/{args.data}_{args.model}_s{args.seed}",
        progress=not args.no_progress,
    )
    device = resolve_device(args.device)
    try:
        r = train_gan(settings, device)
    except KeyboardInterrupt:
        print(f"interrupted: {settings.out}/checkpoint.pt holds the last state")
        return 130
    print(
        f"{r['model']} GAN on {r['data']} (G {r['params_g']:,}, D {r['params_d']:,} params): "
        f"validity {r['validity']:.3f}, coverage {r['coverage']:.3f}, JS {r['js']:.3f} after "
        f"{r['epochs']} epochs, {r['seconds']:.0f} s; {settings.out}/results.json"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
