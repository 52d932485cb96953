"""Train conv and CoordConv GANs on the same images and write docs/results/gan.md: validity,
coverage and JS divergence of the generated objects' positions (the paper's "less mode
collapse", measured), beside the same measure of held-out real images.

--budget quick: both models on 3,136 squares for 6 epochs with nets at a quarter of the
release's width (docs/results/gan.md says how long it took); --budget full is the release's run
(50,000 clevr images, 50 epochs, full-width nets).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common.errors import ArgumentParser, run_cli
from common.reproduce import (
    add_override_args,
    add_reproduce_args,
    check_reproduce_args,
    given_overrides,
    progress_bar,
)
from supervised.gan.trainer import GanSettings

PREAMBLE = """# GAN: conv vs CoordConv, measured mode collapse

Both GANs train on the same images per seed (supervised/gan/trainer.py): `conv` is the
release's deconv generator with the DCGAN discriminator, `coordconv` the release's CoordConv
generator (z tiled over the canvas with coordinate channels, a 1x1 conv stack) with the DCGAN
discriminator seeing coordinates; non-saturating loss, batch 16, z_dim 256 ~ U(-1, 1), Adam
(beta1 0.5) with D 1e-4, G 5e-4, one D and two G updates per batch as the release's
train_gan.py does. After training, 1,000 samples from fixed z are measured
(supervised/gan/mode_collapse.py): objects are found by colour masks and connected components;
validity is the fraction of samples with exactly the data's objects; coverage the fraction of
the real centres' 8x8-grid cells (per colour) that generated objects reach; JS the Jensen-Shannon
divergence (bits, 0 = same, 1 = disjoint) between real and generated centre histograms. Higher
validity and coverage and lower JS mean less collapse. The real-data row measures real images
the models did not train on (clevr: a fresh draw; square: a random subset of the 3,136), the
best a generator can score with this many samples. Values are the mean over seeds with the min-max
range. Produced by `scripts/reproduce_gan.py`.

The CoordConv generator's first layer starts from a balanced init, the one change from the
release (supervised/gan/models.py): its z columns are He-normal over z's fan-in and its two
coordinate columns over their own, where the release used one fan-in of 258 for all, which gives
position 2/258 of the layer's variance. With the release's init this page's quick table drew no
square in 784 steps (commit 50c7eac: CoordConv validity 0.003, coverage 0.008);
`train_gan.py --coord-init release` keeps it.

What the quick budget means: the 3,136 Not-so-Clevr squares (every position once, so a
generator without collapse spreads its squares evenly), 6 epochs (1,176 steps), nets at a
quarter of the release's width, two seeds. That is far short of the release's 156,000 steps: it
shows where each GAN stands early, not where it converges.

Pictures (`--pictures`, committed for the quick run): gan_<model>_s<seed>_samples.png holds 64
samples from the fixed evaluation z, gan_<model>_s<seed>_interpolation.png rows of samples along
straight lines in z between random pairs (the paper's figure). In the quick run the conv GAN
draws one square in the same place for every z; the CoordConv GAN draws its objects all over
the canvas and moves them smoothly along each line in z, though about 4 samples in 10 are not
yet a plausible square (a blob too small or too thin, or in two pieces: its validity).
"""

# The budget's settings a user may override, with train_gan.py's flags (GanSettings).
OVERRIDES = ("data", "epochs", "images", "eval_samples")


def main() -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_reproduce_args(p, "docs/results/gan.md", 2, "quick (CPU-sized) or full (the release's)")
    add_override_args(p, GanSettings, OVERRIDES, "train_gan.py")
    p.add_argument("--pictures", action="store_true", help="keep each run's sample grid and "
                   "latent interpolations as <out stem>_<model>_s<seed>_samples.png and "
                   "..._interpolation.png beside --out")  # fmt: skip
    args = p.parse_args()
    from supervised.gan.report import BUDGETS, budget_settings, markdown_table, run_pair

    check_reproduce_args(args, BUDGETS)
    overrides = given_overrides(args, OVERRIDES)
    s = budget_settings(args.budget, **overrides)

    from common.devices import select_device
    from common.results import write_benchmark

    device = select_device(args.device, args.tf32)
    start = time.perf_counter()

    pictures = Path(args.out).with_suffix("") if args.pictures else None
    bar = progress_bar(args, "gan")
    rows = run_pair(args.budget, args.seeds, device, bar, pictures, **overrides)
    minutes = (time.perf_counter() - start) / 60
    table, comparison = markdown_table(rows)
    summary = (
        f"{comparison} Budget {args.budget}: {s.data}, {s.images:,} images, "
        f"epochs {s.epochs}, width {s.width:g}, {s.eval_samples:,} samples measured, seed(s) "
        f"{', '.join(map(str, range(args.seeds)))}; {minutes:.1f} min."
    )
    write_benchmark(
        args.out, PREAMBLE, device, "scripts/reproduce_gan.py", sys.argv[1:], table, summary,
        rows, note=f"; budget {args.budget}",
    )  # fmt: skip
    return 0


def run() -> None:
    """`coordconv-reproduce-gan` on the command line: main() with run_cli's exit statuses."""
    run_cli(main)


if __name__ == "__main__":
    run()
