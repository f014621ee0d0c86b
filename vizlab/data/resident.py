"""Images resident on an accelerator as uint8, normalized as each batch is read.

On a GPU the whole training set lives in device memory (batches are index slices, never copies
from the host). Kept as uint8 it takes a quarter of the memory and of the bandwidth a batch read
costs; normalizing a batch is a few elementwise kernels, queued like the step's others, with no
host sync. The arithmetic is the float32 path's own (``float() / 255 - mean) / std``, in that
order), so both give bit-identical inputs. On the CPU the float32 copy stays: there the
per-batch arithmetic would be real time on the cores that train.
"""

from __future__ import annotations

import torch


class ResidentImages:
    """(N, 1, H, W) images kept as uint8 on their device; indexing returns normalized float32,
    as indexing the float32 tensor would. What training and evaluation use of a tensor
    (``[index]``, ``len``, ``device``, ``shape``) is all there is."""

    def __init__(self, pixels: torch.Tensor, mean: float, std: float):
        if pixels.dtype != torch.uint8:
            raise TypeError(f"pixels must be uint8, not {pixels.dtype}")
        self.pixels, self.mean, self.std = pixels, mean, std

    def __getitem__(self, index) -> torch.Tensor:
        return normalize(self.pixels[index], self.mean, self.std)

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    @property
    def shape(self) -> torch.Size:
        return self.pixels.shape


def normalize(pixels: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 pixels -> float32, scaled to 0..1 and standardized (a new tensor)."""
    return pixels.float().div_(255.0).sub_(mean).div_(std)
