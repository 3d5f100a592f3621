"""What a person watching a run sees: a progress bar and sample grids."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from sagan_viz.checkpoint import snapshot_stem
from sagan_viz.imaging import image_grid, to_uint8_images


class Progress:
    """A tqdm bar (it/s and ETA) with the latest losses and every gamma; silent when disabled."""

    def __init__(self, total_steps: int, start_step: int, enabled: bool) -> None:
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True) if enabled else None
        self.shown_step = start_step

    def advance(self, step: int) -> None:
        """Move the bar to `step`."""
        if self.bar is not None:
            self.bar.update(step - self.shown_step)
        self.shown_step = step

    def show(self, step: int, loss_d: float, loss_g: float, gamma: dict[str, float]) -> None:
        """Move to `step` and print the current losses and gammas beside the bar."""
        if self.bar is not None:
            fields = {"D": f"{loss_d:.3f}", "G": f"{loss_g:.3f}"}
            fields.update({f"γ {name}": f"{value:+.4f}" for name, value in gamma.items()})
            self.bar.set_postfix(fields, refresh=False)
        self.advance(step)

    def close(self) -> None:
        """Finish the bar's line."""
        if self.bar is not None:
            self.bar.close()


@torch.no_grad()
def save_sample_grid(generator_ema, z: torch.Tensor, labels, out_dir: str | Path, step: int) -> Path:
    """Write samples/step_XXXXXXX.png: EMA-G (always in eval mode) on a fixed z, 8 per row."""
    device = next(generator_ema.parameters()).device
    images = generator_ema(z.to(device), None if labels is None else labels.to(device))
    path = Path(out_dir) / "samples" / f"{snapshot_stem(step)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(to_uint8_images(images), columns=8)).save(path)
    return path
