"""Train a conv or CoordConv GAN on clevr (two coloured objects) or square (Not-so-Clevr) and
measure its mode collapse: validity, coverage and JS divergence of the generated objects'
positions (supervised/gan/mode_collapse.py).

Example: python scripts/train_gan.py --data clevr --model coordconv --epochs 5 --images 5000
Writes TensorBoard events (loss/d, loss/g, measure/validity|coverage|js, a sample grid each
epoch), OUT/checkpoint.pt (each epoch and on Ctrl-C, atomically; CPU tensors, so it loads on
any machine), OUT/results.json (the final measures, parameters, seconds, settings, the device
used, per-epoch history), OUT/samples.png (8x8 samples) and
OUT/interpolation.png (rows: straight lines in z between random pairs).
"""

from __future__ import annotations

from common.cli import settings_from, settings_parser
from common.devices import select_device
from common.errors import run_cli
from supervised.gan.trainer import GanSettings, train_gan


def main() -> int:
    args = settings_parser(GanSettings, __doc__, device=True).parse_args()
    settings = settings_from(GanSettings, args)
    settings.out = settings.out or f"runs/gan/{settings.data}_{settings.model}_s{settings.seed}"
    device = select_device(args.device, args.tf32)
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


def run() -> None:
    """`coordconv-train-gan` on the command line: main() with run_cli's exit statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
