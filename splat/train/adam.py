"""Adam for Gaussian parameters with visible-only ("sparse") row updates.

Every parameter is a tensor whose first dimension is the Gaussian index (N, ...). In sparse mode a
step updates only the rows of Gaussians visible in the current view (radii > 0): their parameter
values, both moments and their step count. Invisible rows keep their moments untouched, so a
Gaussian that leaves the view does not keep drifting on stale momentum (the point of gsplat's
SelectiveAdam and 3DGS-MCMC/Taming's sparse Adam).

Bias correction: each row has its own step count (how many updates that row received), and the
row's bias correction uses it. A row therefore sees exactly the Adam it would see if the steps where
it was invisible had not happened; new rows made by densification start at step 0 with zero moments.
gsplat's SelectiveAdam (CPU path) applies no bias correction at all; with all rows visible ours
equals torch.optim.Adam (single-tensor path) value for value.

Visibility rescaling (`rescale_cap`, off by default in this class): dense Adam keeps moving a row on
its momentum while it is out of view, so over t steps a row visible in a fraction f of them moves
about t sqrt(f) steps' worth (m ~ f g, sqrt(v) ~ sqrt(f) |g|), while sparse Adam moves it t f: in
effect a learning rate sqrt(f) times smaller. With rescale_cap > 0 each visible row's step is
multiplied by min(rescale_cap, sqrt(t / s)), s being the row's own update count, which restores
dense Adam's total movement without touching invisible rows.

Low-precision storage: a parameter may be stored as float16/bfloat16. Its moments are kept in
float32 (bfloat16 cannot represent the 0.999 decay of the second moment; float16 squares of typical
gradients underflow), the update is computed in float32 and the result cast back. bfloat16 casts use
stochastic rounding: an update of lr 1.25e-4 is smaller than half a bfloat16 ulp of a coefficient
near 0.1, so round-to-nearest would discard most updates; stochastic rounding keeps them in
expectation. float16 (10 mantissa bits) uses round-to-nearest.

Implementation: float32 parameters on the CPU use the fused native kernel
(splat/native/csrc/adam_cpu.cpp: one pass over each parameter, rows in parallel) when it is built;
everything else (CUDA, float16/bfloat16 storage, `backend="torch"`) uses the PyTorch path below,
which is also the kernel's reference twin (tests/test_adam_native.py). The PyTorch path uses
index_select / index_copy_ when few Gaussians are visible and full-width passes with zero weights
for invisible rows when most are (`index_below`).
"""

from __future__ import annotations

import torch
from torch import Tensor


class GaussianAdam:
    """Adam over a dict of per-Gaussian parameters (N, ...), sparse or dense.

    Attributes:
        params: name -> leaf tensor (N, ...) requiring grad; replaced (not mutated) when rows are
            kept or appended, so always read params from here.
        lr: name -> learning rate (set by the schedule each step).
        state: name -> {"exp_avg", "exp_avg_sq" (float32, param shape), "step" (N,) int64}.
        sparse: update only visible rows (True) or all rows (False, plain Adam).
        index_below: in sparse mode, gather/scatter the visible rows when they are fewer than this
            fraction of N; above it, update all rows with the invisible ones masked out (same
            result: measured on a 2-core CPU, gathering wins below about 40% visible).
        backend: "auto" (native kernel for float32 CPU parameters when it is built, else torch),
            "cpu" (the native kernel required: raises when unavailable) or "torch"; the words of
            splat.config.BACKENDS.
        rescale_cap: in sparse mode, scale each visible row's step by min(rescale_cap, sqrt(t / s))
            (t: steps taken, s: the row's update count; see the module docstring); 0 = off.
    """

    def __init__(
        self,
        params: dict[str, Tensor],
        lr: dict[str, float],
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-15,
        sparse: bool = True,
        index_below: float = 0.4,
        seed: int = 0,
        backend: str = "auto",
        rescale_cap: float = 0.0,
    ) -> None:
        if backend not in ("auto", "cpu", "torch"):
            raise ValueError(f"GaussianAdam backend must be auto, cpu or torch, got {backend!r}")
        self.params = {k: _leaf(v.detach().clone()) for k, v in params.items()}  # never alias the caller's
        self.lr = {k: float(lr[k]) for k in self.params}
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.sparse = sparse
        self.index_below = float(index_below)
        self.rescale_cap = float(rescale_cap) if sparse else 0.0
        self.state = {k: _zero_state(p, len(p)) for k, p in self.params.items()}
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))  # stochastic rounding
        self._bias: dict[tuple, Tensor] = {}
        self._native = _native_module(backend)
        self._max_step = 0  # upper bound of every row's step count (one per step() call)

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def _bias_table(self, which: int, max_step: int, device: torch.device) -> Tensor:
        """Bias corrections by step count, (>max_step,) float64, computed with Python floats exactly as
        torch.optim.Adam does: which=1: 1 - beta1**s; which=2: (1 - beta2**s) ** 0.5."""
        key = (which, str(device))
        table = self._bias.get(key)
        if table is None or len(table) <= max_step:
            n = max(2 * max_step, 1024)
            b = self.betas[which - 1]
            values = (
                [1 - b**s for s in range(n + 1)] if which == 1 else [(1 - b**s) ** 0.5 for s in range(n + 1)]
            )
            table = torch.tensor(values, dtype=torch.float64, device=device)
            self._bias[key] = table
        return table

    @torch.no_grad()
    def step(self, visible: Tensor | None = None) -> None:
        """One Adam step on every parameter that has a grad.

        Args:
            visible: (N,) bool, Gaussians drawn in this view (RenderOutput.visible). Required in
                sparse mode; ignored in dense mode.
        """
        self._max_step += 1
        vis = None
        if self.sparse:
            if visible is None:
                raise ValueError("sparse GaussianAdam.step() needs the visible mask (N,) bool")
            vis = visible.reshape(-1).to(torch.bool).contiguous()
            n_visible = int(vis.sum())
            if n_visible == 0:
                return
        todo = [
            (n, p) for n, p in self.params.items() if p.grad is not None and p.requires_grad and p.numel()
        ]
        fused, rest = [], []
        for item in todo:
            (fused if self._native is not None and _fusable(item[1]) else rest).append(item)
        if fused:
            self._step_native(fused, vis)
        if not rest:
            return
        idx = mask = None
        if vis is not None and n_visible < self.index_below * len(self):
            idx = vis.nonzero().reshape(-1)
        elif vis is not None and n_visible < len(self):
            mask = vis
        for name, p in rest:
            self._update(name, p, idx, mask)

    def _step_native(self, params: list[tuple[str, Tensor]], visible: Tensor | None) -> None:
        """Adam on float32 CPU parameters through the fused kernel (same values as _update)."""
        vis = torch.empty(0, dtype=torch.bool) if visible is None else visible
        bias1 = self._bias_table(1, self._max_step + 1, torch.device("cpu"))
        bias2 = self._bias_table(2, self._max_step + 1, torch.device("cpu"))
        threads = torch.get_num_threads()
        for name, p in params:
            st = self.state[name]
            self._native.adam_step(
                p.data, p.grad.float().contiguous(), st["exp_avg"], st["exp_avg_sq"], st["step"], vis,
                bias1, bias2, self.lr[name], self.betas[0], self.betas[1], self.eps, threads,
                self._max_step, self.rescale_cap,
            )  # fmt: skip

    def _update(self, name: str, p: Tensor, idx: Tensor | None, mask: Tensor | None) -> None:
        """Adam on rows idx (gather/scatter), or on all rows with invisible ones masked out, or all."""
        st = self.state[name]
        b1, b2 = self.betas
        shape = (-1,) + (1,) * (p.dim() - 1)
        rows = (lambda t: t) if idx is None else (lambda t: t.index_select(0, idx))  # noqa: E731
        grad = rows(p.grad).float()
        m, v = rows(st["exp_avg"]), rows(st["exp_avg_sq"])  # views of the state unless gathered
        if mask is None:
            steps = rows(st["step"]) + 1
            m.lerp_(grad, 1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        else:  # weights 0 leave invisible rows' moments exactly as they were
            steps = st["step"] + mask
            w = mask.float().reshape(shape)
            m.lerp_(grad, (1 - b1) * w)
            v.mul_(torch.where(w > 0, b2, 1.0)).addcmul_(grad * w, grad, value=1 - b2)
        top = int(steps.max())
        bc1 = self._bias_table(1, top, steps.device)[steps.clamp_min(1)]
        bc2_sqrt = self._bias_table(2, top, steps.device)[steps.clamp_min(1)]
        lr = -self.lr[name]
        if self.rescale_cap > 0:  # visibility rescaling, same float64 formula as the native kernel
            lr = lr * (self._max_step / steps.clamp_min(1).double()).sqrt().clamp_max(self.rescale_cap)
        neg_step_size = (lr / bc1).float().reshape(shape)
        denom = (v.sqrt() / bc2_sqrt.float().reshape(shape)).add_(self.eps)
        new = self._cast(rows(p).float() + neg_step_size * m / denom, p.dtype)
        if idx is not None:
            p.index_copy_(0, idx, new)
            st["exp_avg"].index_copy_(0, idx, m)
            st["exp_avg_sq"].index_copy_(0, idx, v)
            st["step"].index_copy_(0, idx, steps)
            return
        p.copy_(new if mask is None else torch.where(mask.reshape(shape), new, p))
        st["step"].copy_(steps)

    def _cast(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        if dtype == torch.bfloat16:
            return stochastic_round_bf16(x, self.generator)
        return x.to(dtype)

    # ---- resizing, used by densification / pruning strategies -------------------------------

    @torch.no_grad()
    def keep(self, index: Tensor) -> None:
        """Keep (and reorder to) the rows `index` (M,) int64 or (N,) bool of every parameter and its state."""
        if index.dtype == torch.bool:
            index = index.nonzero().reshape(-1)
        for name, p in self.params.items():
            self.params[name] = _leaf(p.detach().index_select(0, index), p.requires_grad)
            self.state[name] = {k: v.index_select(0, index) for k, v in self.state[name].items()}

    @torch.no_grad()
    def append(self, rows: dict[str, Tensor]) -> None:
        """Append new Gaussians (one tensor per parameter, M rows each) with zero moments and step 0."""
        for name, p in self.params.items():
            new = rows[name].detach().to(device=p.device, dtype=p.dtype)
            self.params[name] = _leaf(torch.cat([p.detach(), new]), p.requires_grad)
            extra = _zero_state(new, len(new))
            self.state[name] = {k: torch.cat([v, extra[k]]) for k, v in self.state[name].items()}

    @torch.no_grad()
    def reset_state(self, name: str) -> None:
        """Zero the moments and step counts of one parameter (e.g. after an opacity reset)."""
        self.state[name] = _zero_state(self.params[name], len(self.params[name]))

    # ---- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "state": {k: {n: t.clone() for n, t in s.items()} for k, s in self.state.items()},
            "lr": dict(self.lr),
            "betas": self.betas,
            "eps": self.eps,
            "sparse": self.sparse,
            "rescale_cap": self.rescale_cap,
            "max_step": self._max_step,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, sd: dict) -> None:
        for name, p in self.params.items():
            s = sd["state"][name]
            if s["exp_avg"].shape != p.shape:
                raise ValueError(
                    f"state for {name}: {tuple(s['exp_avg'].shape)}, parameter: {tuple(p.shape)}"
                )
            self.state[name] = {n: t.to(p.device).clone() for n, t in s.items()}
        self.lr.update(sd["lr"])
        self.betas, self.eps, self.sparse = tuple(sd["betas"]), sd["eps"], sd["sparse"]
        self.rescale_cap = float(sd.get("rescale_cap", 0.0))
        self.generator.set_state(sd["generator"])
        rows = max([int(s["step"].max()) for s in self.state.values() if s["step"].numel()] + [0])
        self._max_step = max(int(sd.get("max_step", 0)), rows)  # steps taken (rescaling uses it)


def _fusable(p: Tensor) -> bool:
    return p.dtype == torch.float32 and p.device.type == "cpu" and p.is_contiguous()


def _native_module(backend: str):
    """The native extension when backend allows and it is built, else None (backend="cpu": raise)."""
    if backend == "torch":
        return None
    from splat.native import build

    if backend == "cpu" or build.available():
        return build.load()
    return None


def _leaf(t: Tensor, requires_grad: bool = True) -> Tensor:
    return t.detach().contiguous().requires_grad_(requires_grad)


def _zero_state(p: Tensor, n: int) -> dict[str, Tensor]:
    return {
        "exp_avg": torch.zeros(p.shape, dtype=torch.float32, device=p.device),
        "exp_avg_sq": torch.zeros(p.shape, dtype=torch.float32, device=p.device),
        "step": torch.zeros(n, dtype=torch.int64, device=p.device),
    }


def stochastic_round_bf16(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """float32 -> bfloat16 rounding up or down with probability given by the distance (unbiased).

    bfloat16 is the top 16 bits of float32: add uniform random low 16 bits, then truncate.
    """
    x = x.float().contiguous()
    noise = torch.randint(0, 1 << 16, x.shape, generator=generator, dtype=torch.int32).to(x.device)
    bits = (x.view(torch.int32) + noise) & -65536  # clear the low 16 bits
    out = bits.view(torch.float32)
    out = torch.where(torch.isfinite(x), out, x)  # keep inf/nan as they are
    return out.to(torch.bfloat16)  # exact: the low bits are zero
