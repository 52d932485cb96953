"""Train a conv or CoordConv GAN on clevr or square and measure its mode collapse each epoch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from common.cli import option
from common.devices import device_record
from common.errors import UsageError, check_at_least, check_choice, check_positive
from common.files import atomic_path
from common.results import count_params
from supervised.gan.data import DATASETS, FULL_SIZE, GanData, load_gan_data
from supervised.gan.mode_collapse import Reference, collapse_scores, reference
from supervised.gan.models import COORD_INITS, MODELS, build_gan
from supervised.loop import TrainingRun, train_epoch

REFERENCE_IMAGES = 10_000  # real images whose centres make the reference histograms
EVAL_NOISE_SEED = 2018  # the same evaluation z for every run: a fixed test set for generators
CHUNK = 250  # images per forward pass when sampling or measuring
GRID_SAMPLES = 64  # samples.png and the TensorBoard image: an 8x8 grid
INTERPOLATION_ROWS, INTERPOLATION_STEPS = 8, 10


@dataclass
class GanSettings:
    """One GAN run, one field per flag of train_gan.py; the defaults are the release's (batch 16,
    Adam D 1e-4, G 5e-4, z 256, 2 G updates per batch, 50 epochs)."""

    data: str = option("clevr", f"dataset: {', '.join(DATASETS)}")
    model: str = option("coordconv", f"GAN: {', '.join(MODELS)}")
    epochs: int = option(50, "epochs")
    images: int | None = option(None, "training images (default: all, clevr 50,000, square 3,136)")
    batch_size: int = option(16, "images per step")
    seed: int = option(0, "seed of init, data, shuffling and z")
    lr_d: float = option(1e-4, "discriminator Adam rate")
    lr_g: float = option(5e-4, "generator Adam rate")
    beta1: float = 0.5  # DCGAN's Adam beta1; the release does not say otherwise
    g_steps: int = option(2, "generator updates per batch (the release's train_gan.py makes 2)")
    z_dim: int = option(256, "latent size, z ~ U(-1, 1)")
    width: float = option(1.0, "hidden-channel multiplier of all four nets (1.0: the release)")
    coord_init: str = option(
        "balanced",
        "CoordConv generator's first layer: balanced (z and coordinates each He-normal over "
        "their own fan-in) or release (one fan-in for all)",
    )
    eval_samples: int = option(1000, "samples measured per epoch")
    out: str | None = option(None, "output folder (runs/gan/<data>_<model>_s<seed>)")
    progress: bool = option(True, "hide the progress bar")


def check_settings(s: GanSettings) -> None:
    check_choice("data", s.data, DATASETS)
    check_choice("model", s.model, MODELS)
    check_choice("coord-init", s.coord_init, COORD_INITS)
    for name in ("epochs", "batch_size", "z_dim", "eval_samples", "g_steps"):
        check_at_least(f"--{name.replace('_', '-')}", getattr(s, name))
    if s.images is not None:
        check_at_least("--images", s.images)
        if s.images > FULL_SIZE[s.data]:
            raise UsageError(f"--images {s.images}: {s.data} has {FULL_SIZE[s.data]:,} images")
    for name in ("lr_d", "lr_g", "width"):
        check_positive(f"--{name.replace('_', '-')}", getattr(s, name))
    if not 0 <= s.beta1 < 1:
        raise UsageError(f"--beta1 must be in [0, 1), got {s.beta1}")


def uniform_z(n: int, z_dim: int, generator: torch.Generator) -> torch.Tensor:
    """z ~ U(-1, 1), drawn on the CPU so a seed gives the same z on any device."""
    return torch.rand(n, z_dim, generator=generator) * 2 - 1


@torch.no_grad()
def sample(net: nn.Module, z: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Generator outputs for `z` (on any device) in eval mode (BN running statistics), on the
    CPU, copied there at once."""
    net.eval()
    z = z.to(device)
    out = torch.cat([net(z[i : i + CHUNK]) for i in range(0, len(z), CHUNK)]).cpu()
    net.train()
    return out


def real_reference(data: GanData) -> Reference:
    """The measure's reference: the centres found in up to REFERENCE_IMAGES training images."""
    n = min(len(data), REFERENCE_IMAGES)
    return reference((data.batch(range(i, min(i + CHUNK, n))) for i in range(0, n, CHUNK)),
                     data.name)  # fmt: skip


def save_grid(images: torch.Tensor, path: Path, nrow: int) -> None:
    """A PNG grid of [-1, 1] images, written atomically."""
    from torchvision.utils import save_image

    with atomic_path(path) as tmp:
        save_image((images + 1) / 2, tmp, nrow=nrow, padding=2, pad_value=0.5, format="png")


def interpolation(net: nn.Module, z_dim: int, device: torch.device) -> torch.Tensor:
    """Rows of images along straight lines in z between random pairs (the paper's figure)."""
    g = torch.Generator().manual_seed(EVAL_NOISE_SEED + 1)
    ends = uniform_z(2 * INTERPOLATION_ROWS, z_dim, g).view(INTERPOLATION_ROWS, 2, z_dim)
    t = torch.linspace(0, 1, INTERPOLATION_STEPS)[None, :, None]
    z = (1 - t) * ends[:, :1] + t * ends[:, 1:]  # (rows, steps, z_dim)
    return sample(net, z.reshape(-1, z_dim), device)


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def gan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    g_steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch: a D update on real vs G(z), then `g_steps` G updates on the same z, as the
    release does. Returns the D loss and the last G loss, detached 0-dim tensors on the device
    (reading them is the caller's choice: a host sync)."""
    fake = generator(z)
    loss_d = _bce(discriminator(real), True) + _bce(discriminator(fake.detach()), False)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    for g_step in range(g_steps):
        if g_step > 0:
            fake = generator(z)  # the first G update reuses the D update's fake: G is unchanged
        # Non-saturating: G maximises log D(G(z)) rather than minimising log(1 - D(G(z))).
        loss_g = _bce(discriminator(fake), True)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return loss_d.detach(), loss_g.detach()


def train_gan(s: GanSettings, device: torch.device) -> dict[str, Any]:
    """Train one GAN with the non-saturating loss; measure validity, coverage and js on fixed
    evaluation z each epoch. Writes TensorBoard events, OUT/checkpoint.pt (each epoch and on
    Ctrl-C, atomically), and at the end OUT/results.json, OUT/samples.png, OUT/interpolation.png."""
    check_settings(s)
    torch.manual_seed(s.seed)
    data = load_gan_data(s.data, s.images, s.seed)
    ref = real_reference(data)  # on the CPU, where the measure finds objects
    # What the images are drawn from fits on any device (square: 13 MB; clevr: centres and
    # shapes only), so each batch is drawn there: nothing is copied per step.
    data = data.to(device)
    generator, discriminator = build_gan(s.model, data.channels, s.z_dim, s.width, s.coord_init)
    generator, discriminator = generator.to(device), discriminator.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=s.lr_g, betas=(s.beta1, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=s.lr_d, betas=(s.beta1, 0.999))
    shuffle = torch.Generator().manual_seed(s.seed)
    noise = torch.Generator().manual_seed(s.seed + 1)
    eval_z = uniform_z(s.eval_samples, s.z_dim, torch.Generator().manual_seed(EVAL_NOISE_SEED))
    eval_z = eval_z.to(device)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`gan_step` on the real images at `batch`'s indices and its z; the losses, left on
        the device."""
        index, z = batch
        d, g = gan_step(generator, discriminator, opt_g, opt_d, data.batch(index), z, s.g_steps)
        return {"loss/d": d, "loss/g": g}

    def state(epoch: int, finished: bool) -> dict[str, Any]:
        """What OUT/checkpoint.pt holds after `epoch`."""
        return {
            "epoch": epoch,
            "finished": finished,
            "generator": generator.state_dict(),
            "discriminator": discriminator.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "settings": asdict(s),
        }

    history: list[dict[str, float]] = []
    epoch = 0

    def interrupted() -> dict[str, Any]:
        """What Ctrl-C saves before it ends the run: the epoch under way, not finished."""
        return state(epoch, finished=False)

    show = {"loss/d": "d", "loss/g": "g"}
    with TrainingRun(s.out, progress=s.progress, show=show, on_interrupt=interrupted) as run:
        for epoch in range(1, s.epochs + 1):
            order = torch.randperm(len(data), generator=shuffle).to(device)
            # The epoch's z at once, on the CPU (the same numbers as drawn batch by batch, on
            # any device), then copied in one go.
            epoch_z = uniform_z(len(data), s.z_dim, noise).to(device)
            batches = [(order[i : i + s.batch_size], epoch_z[i : i + s.batch_size])
                       for i in range(0, len(data), s.batch_size)]  # fmt: skip
            rows = train_epoch(run, batches, step, f"{s.model} epoch {epoch}")
            sums = {"loss_d": 0.0, "loss_g": 0.0}
            for _, row in rows:
                sums["loss_d"] += row["loss/d"]
                sums["loss_g"] += row["loss/g"]
            samples = sample(generator, eval_z, device)
            scores = collapse_scores(samples, ref)
            means = {k: v / len(batches) for k, v in sums.items()}
            history.append({"epoch": epoch, **means, **scores})
            run.scalars(scores, epoch, prefix="measure/")
            if run.writer is not None:
                from torchvision.utils import make_grid

                grid = make_grid((samples[:GRID_SAMPLES] + 1) / 2, nrow=8, pad_value=0.5)
                run.writer.add_image("samples", grid, epoch)
            run.checkpoint(state(epoch, finished=epoch == s.epochs))
    seconds = run.seconds()
    result = {
        "model": s.model,
        "data": s.data,
        "params_g": count_params(generator),
        "params_d": count_params(discriminator),
        "epochs": s.epochs,
        "images": len(data),
        "steps": run.steps,
        "seconds": seconds,
        **history[-1],
        "seed": s.seed,
        **device_record(device),
        "settings": {k: v for k, v in asdict(s).items() if k not in ("out", "progress")},
        "history": history,
    }
    del result["epoch"]
    run.write_results(result)
    if run.out is not None:
        save_grid(samples[:GRID_SAMPLES], run.out / "samples.png", nrow=8)
        save_grid(interpolation(generator, s.z_dim, device), run.out / "interpolation.png",
                  nrow=INTERPOLATION_STEPS)  # fmt: skip
    return result
