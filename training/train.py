"""`python -m training.train`: train a SAGAN and write checkpoints (the only place that sees argparse).

Example:
    python -m training.train --data faces --resolution 32 --steps 20000 --out runs/faces32
    torchrun --nproc_per_node 2 -m training.train --data faces --steps 2000 --out runs/ddp
"""
from __future__ import annotations

import argparse
import sys

from sagan_viz.checkpoint import CheckpointError
from sagan_viz.config import ATTENTION_VARIANTS, RESOLUTIONS, ConfigError, ModelConfig
from sagan_viz.devices import DEVICE_CHOICES

from .options import TrainConfig

DEFAULTS = TrainConfig(out_dir="")


def _sizes(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected feature sizes like '16' or '8,16' or 'none', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The trainer's command line, every flag explained."""
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a SAGAN (Zhang et al. 2018) and write .safetensors checkpoints that sagan-viz loads.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="folder for checkpoints (step_*.safetensors) and samples/")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out "
                     "(step, optimizers, EMA, RNG and history); the checkpoint's model config is used")
    run.add_argument("--resume-from-valid", action="store_true", help="like --resume, but when the newest "
                     "checkpoint or its resume state is damaged, continue from the newest one that loads (saying so)")
    run.add_argument("--steps", type=int, default=DEFAULTS.steps, help="total generator steps to reach")
    run.add_argument("--device", default=DEFAULTS.device, choices=DEVICE_CHOICES,
                     help="auto picks cuda, then mps, then cpu")
    run.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seeds init, data order and noise")
    run.add_argument("--sample-every", type=int, default=DEFAULTS.sample_every, help="steps between sample grids")
    run.add_argument("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every, help="steps between checkpoints")
    run.add_argument("--history-every", type=int, default=DEFAULTS.history_every,
                     help="steps between history records (losses and every gamma)")
    run.add_argument("--half-checkpoints", action="store_true", help="store weights as float16 (half the size)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")

    data = parser.add_argument_group("data")
    data.add_argument("--data", default=DEFAULTS.data,
                      help="'faces' (built-in procedural faces), a folder of images, or a CIFAR-10 pickle folder")
    data.add_argument("--data-size", type=int, default=DEFAULTS.data_size, help="images rendered for 'faces'")
    data.add_argument("--conditional", action="store_true",
                      help="use the data's class labels (conditional BN in G, projection D)")

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="per process")
    optimisation.add_argument("--lr-g", type=float, default=DEFAULTS.lr_g, help="generator learning rate (TTUR)")
    optimisation.add_argument("--lr-d", type=float, default=DEFAULTS.lr_d, help="discriminator learning rate (TTUR)")
    optimisation.add_argument("--beta1", type=float, default=DEFAULTS.beta1, help="Adam beta1")
    optimisation.add_argument("--beta2", type=float, default=DEFAULTS.beta2, help="Adam beta2")
    optimisation.add_argument("--d-steps", type=int, default=DEFAULTS.d_steps, help="D steps per G step")
    optimisation.add_argument("--ema-decay", type=float, default=DEFAULTS.ema_decay, help="EMA of G's weights")

    model = parser.add_argument_group("model")
    defaults = ModelConfig()
    model.add_argument("--resolution", type=int, default=defaults.resolution, choices=RESOLUTIONS,
                       help="image side in pixels")
    model.add_argument("--z-dim", type=int, default=defaults.z_dim, help="latent size")
    model.add_argument("--g-channels", type=int, default=defaults.g_channels, help="G width at full resolution")
    model.add_argument("--d-channels", type=int, default=defaults.d_channels, help="D base width")
    model.add_argument("--g-attention", type=_sizes, default=defaults.g_attention,
                       help="feature sizes with self-attention in G, e.g. 16 or 8,16; 'none' for no attention")
    model.add_argument("--d-attention", type=_sizes, default=defaults.d_attention,
                       help="feature sizes with self-attention in D, e.g. 16; 'none' for no attention")
    model.add_argument("--attention-variant", default=defaults.attention_variant, choices=ATTENTION_VARIANTS,
                       help="'paper': eqs. (1)-(3); 'official': the released code (pooled keys, h: C->C/2)")
    return parser


def configs_from_arguments(args: argparse.Namespace, num_classes: int = 0) -> tuple[TrainConfig, ModelConfig]:
    """Turn parsed flags into the two config objects (raises ValueError on impossible values)."""
    options = TrainConfig(
        out_dir=args.out, data=args.data, data_size=args.data_size, steps=args.steps, batch_size=args.batch_size,
        lr_g=args.lr_g, lr_d=args.lr_d, beta1=args.beta1, beta2=args.beta2, d_steps=args.d_steps,
        ema_decay=args.ema_decay, seed=args.seed, device=args.device, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, history_every=args.history_every,
        half_checkpoints=args.half_checkpoints, progress=not args.no_progress,
    )
    config = ModelConfig(
        resolution=args.resolution, z_dim=args.z_dim, g_channels=args.g_channels, d_channels=args.d_channels,
        num_classes=num_classes, g_attention=args.g_attention, d_attention=args.d_attention,
        attention_variant=args.attention_variant,
    )
    return options, config


def main(argv: list[str] | None = None) -> int:
    """Parse flags, check them, train; errors are one line, not a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .data import load_dataset  # deferred: --help stays instant
    from .loop import train

    try:
        num_classes = 0
        if args.conditional:
            num_classes = load_dataset(args.data, args.resolution, size=16, seed=args.seed).num_classes
            if num_classes == 0:
                parser.error(f"--conditional: {args.data} has no class labels")
        options, config = configs_from_arguments(args, num_classes)
        train(options, config, resume=args.resume, resume_from_valid=args.resume_from_valid)
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError, FileExistsError) as error:
        parser.error(str(error))
    except KeyboardInterrupt:
        print("\nstopped; continue with the same command and --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
