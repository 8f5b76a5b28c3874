"""Per-photo appearance: an affine colour correction per training view, learned with the scene.

    corrected_v = rendered @ A_v^T + b_v        A_v (3, 3), b_v (3,)

Photos of one capture differ in exposure and white balance; without a correction the Gaussians
absorb those differences (view-dependent colour, floaters that tint one view). With it the scene
keeps one set of colours and each photo its own affine map onto them.

Gauge: the scene's colours and all the maps could drift together (A_v M, M^-1 colours). After every
step the maps are projected so their mean is the identity (mean A_v = I, mean b_v = 0): the scene
holds the capture's average appearance, which is what a held-out view, having no map of its own, is
rendered with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Appearance:
    """Learnable affine colour maps of V views.

    Attributes:
        matrix: (V, 3, 3) leaf, identity at the start.
        offset: (V, 3) leaf, zero at the start.
    """

    matrix: Tensor
    offset: Tensor

    @staticmethod
    def create(n_views: int, device=None) -> Appearance:
        eye = torch.eye(3, device=device).repeat(n_views, 1, 1)
        return Appearance(
            eye.requires_grad_(True), torch.zeros(n_views, 3, device=device, requires_grad=True)
        )

    def __len__(self) -> int:
        return len(self.matrix)

    def parameters(self) -> list[Tensor]:
        return [self.matrix, self.offset]

    def apply(self, image: Tensor, view: int) -> Tensor:
        """(H, W, 3) rendered image -> the same in view `view`'s colours (differentiable)."""
        return image @ self.matrix[view].T + self.offset[view]

    @torch.no_grad()
    def project_gauge(self) -> None:
        """Shift the maps so their mean is the identity map (see the module docstring)."""
        eye = torch.eye(3, device=self.matrix.device)
        self.matrix -= self.matrix.mean(0, keepdim=True) - eye
        self.offset -= self.offset.mean(0, keepdim=True)

    def state_dict(self) -> dict[str, Tensor]:
        return {"matrix": self.matrix.detach().clone(), "offset": self.offset.detach().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            self.matrix.copy_(state["matrix"])
            self.offset.copy_(state["offset"])

    def summary(self) -> list[dict]:
        """Per view: the gain (mean of A's diagonal), the largest off-diagonal |A_ij| and the offset,
        rounded for a JSON record."""
        out = []
        for A, b in zip(self.matrix.detach().cpu(), self.offset.detach().cpu()):
            off = (A - torch.diag(torch.diagonal(A))).abs().max()
            out.append({"gain": round(float(torch.diagonal(A).mean()), 4), "cross": round(float(off), 4),
                        "offset": [round(float(x), 4) for x in b]})  # fmt: skip
        return out


def appearance_optimizer(appearance: Appearance, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(appearance.parameters(), lr=lr)
