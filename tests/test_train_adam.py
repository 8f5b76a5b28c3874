"""GaussianAdam: equals torch.optim.Adam when everything is visible, leaves invisible rows alone."""

import pytest
import torch

from splat.train.adam import GaussianAdam, stochastic_round_bf16


def _params(N: int) -> dict:
    return {"means": torch.randn(N, 3), "sh_rest": torch.randn(N, 15, 3), "opacity_logits": torch.randn(N)}


def _lrs() -> dict:
    return {"means": 10 ** (-3 * torch.rand(()).item() - 1), "sh_rest": 1.25e-4, "opacity_logits": 5e-2}


@pytest.mark.parametrize("sparse", [True, False])
def test_all_visible_matches_torch_adam_exactly(sparse):
    """The PyTorch path, bit for bit (the native kernel's twin: tests/test_adam_native.py)."""
    N, init, lrs = 257, _params(257), _lrs()
    ours = GaussianAdam(init, lrs, eps=1e-15, sparse=sparse, backend="torch")
    ref = {k: v.clone().requires_grad_() for k, v in init.items()}
    torch_adam = torch.optim.Adam([{"params": [ref[k]], "lr": lrs[k]} for k in ref], eps=1e-15, foreach=False)
    for _ in range(12):
        for k, p in ref.items():
            g = torch.randn_like(p) * 10 ** torch.randn(()).item()
            ours.params[k].grad, p.grad = g.clone(), g.clone()
        ours.step(torch.ones(N, dtype=torch.bool))
        torch_adam.step()
    for k in ref:
        assert torch.equal(ours.params[k], ref[k].detach()), k
        assert torch.equal(ours.state[k]["exp_avg"], torch_adam.state[ref[k]]["exp_avg"]), k


# torch's masked full-width path, its gather/scatter path, and the native kernel when it is built
@pytest.mark.parametrize(("index_below", "backend"), [(0.0, "torch"), (1.01, "torch"), (0.0, "auto")])
def test_sparse_rows_follow_their_own_adam_and_invisible_rows_are_untouched(index_below, backend):
    N, steps = 24, 10
    init, lrs = _params(N), _lrs()
    ours = GaussianAdam(init, lrs, sparse=True, eps=1e-8, index_below=index_below, backend=backend)
    masks = torch.rand(steps, N) < 0.5
    masks[:, 0] = False  # row 0 is never visible
    grads = [{k: torch.randn_like(v) for k, v in init.items()} for _ in range(steps)]
    for t in range(steps):
        for k in init:
            ours.params[k].grad = grads[t][k].clone()
        ours.step(masks[t])
    for k in init:
        assert torch.equal(ours.params[k][0], init[k][0])
        assert not ours.state[k]["exp_avg"][0].any() and not ours.state[k]["exp_avg_sq"][0].any()
        assert torch.equal(ours.state[k]["step"], masks.sum(0))
    # every row equals torch Adam run on just the steps where that row was visible
    for n in torch.randint(1, N, (4,)).tolist():
        ref = {k: v[n : n + 1].clone().requires_grad_() for k, v in init.items()}
        adam = torch.optim.Adam([{"params": [ref[k]], "lr": lrs[k]} for k in ref], eps=1e-8, foreach=False)
        for t in range(steps):
            if masks[t, n]:
                for k in ref:
                    ref[k].grad = grads[t][k][n : n + 1].clone()
                adam.step()
        for k in ref:
            torch.testing.assert_close(ours.params[k][n : n + 1], ref[k].detach(), rtol=1e-6, atol=1e-7)


def test_dense_mode_updates_rows_with_zero_grad_too():
    init = _params(8)
    opt = GaussianAdam(init, _lrs(), sparse=False)
    for p in opt.params.values():
        p.grad = torch.randn_like(p)
    opt.step(torch.zeros(8, dtype=torch.bool))  # the mask is ignored in dense mode
    for p in opt.params.values():
        p.grad = torch.zeros_like(p)
    before = {k: v.detach().clone() for k, v in opt.params.items()}
    opt.step()
    assert all(not torch.equal(before[k], opt.params[k]) for k in before)  # momentum keeps moving them
    assert all(bool((s["step"] == 2).all()) for s in opt.state.values())


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_visibility_rescaling_moves_a_rarely_seen_row_as_far_as_dense_adam(backend):
    # row 0 is seen every step, row 1 every 4th step, both with a steady gradient when seen.
    seen = [torch.tensor([True, t % 4 == 0]) for t in range(400)]

    def travel(sparse: bool, cap: float) -> torch.Tensor:
        opt = GaussianAdam(
            {"x": torch.zeros(2, 1)}, {"x": 1e-3}, sparse=sparse, rescale_cap=cap, backend=backend
        )
        for mask in seen:
            opt.params["x"].grad = mask.float().reshape(2, 1)
            opt.step(mask)
        return -opt.params["x"].detach().reshape(2) / 1e-3  # distance in units of lr

    dense, sparse, rescaled = travel(False, 0.0), travel(True, 0.0), travel(True, 4.0)
    assert torch.allclose(dense[0], sparse[0]) and torch.allclose(dense[0], rescaled[0])  # always seen: same
    assert sparse[1] < 0.6 * dense[1]  # plain sparse Adam under-moves the rarely seen row...
    assert abs(rescaled[1] - dense[1]) < 0.1 * dense[1]  # ...rescaling restores dense Adam's travel


def test_keep_append_reset_keep_rows_aligned():
    init = _params(10)
    opt = GaussianAdam(init, _lrs())
    for p in opt.params.values():
        p.grad = torch.randn_like(p)
    opt.step(torch.ones(10, dtype=torch.bool))
    m3 = opt.state["means"]["exp_avg"][3].clone()
    opt.keep(torch.tensor([3, 5]))
    assert len(opt) == 2 and torch.equal(opt.state["means"]["exp_avg"][0], m3)
    opt.append({k: torch.randn(4, *v.shape[1:]) for k, v in opt.params.items()})
    assert len(opt) == 6 and all(v.shape[0] == 6 for v in opt.params.values())
    assert not opt.state["means"]["exp_avg"][2:].any() and not opt.state["means"]["step"][2:].any()
    assert all(p.is_leaf and p.requires_grad and p.is_contiguous() for p in opt.params.values())
    opt.reset_state("opacity_logits")
    assert not opt.state["opacity_logits"]["exp_avg_sq"].any()


@pytest.mark.parametrize("rescale_cap", [0.0, 4.0])
def test_state_dict_round_trip_continues_identically(rescale_cap):
    init = _params(16)
    a = GaussianAdam(init, _lrs(), seed=3, rescale_cap=rescale_cap)
    grads = [{k: torch.randn_like(v) for k, v in init.items()} for _ in range(4)]
    masks = torch.rand(4, 16) < 0.6
    masks[1] &= ~masks[0]  # no row seen at every step: the step count must come from the state dict
    for t in range(2):
        for k in init:
            a.params[k].grad = grads[t][k].clone()
        a.step(masks[t])
    b = GaussianAdam({k: v.detach() for k, v in a.params.items()}, a.lr, seed=99, rescale_cap=rescale_cap)
    b.load_state_dict(a.state_dict())
    for t in range(2, 4):
        for opt in (a, b):
            for k in init:
                opt.params[k].grad = grads[t][k].clone()
            opt.step(masks[t])
    assert all(torch.equal(a.params[k], b.params[k]) for k in init)


def test_low_precision_storage_updates_in_fp32():
    init = {"sh_rest": (0.1 + 0.01 * torch.randn(64, 15, 3)).to(torch.bfloat16)}
    opt = GaussianAdam(init, {"sh_rest": 1.25e-4})
    start = opt.params["sh_rest"].float().clone()
    for _ in range(20):
        opt.params["sh_rest"].grad = torch.ones(64, 15, 3, dtype=torch.bfloat16)
        opt.step(torch.ones(64, dtype=torch.bool))
    assert opt.params["sh_rest"].dtype == torch.bfloat16
    assert opt.state["sh_rest"]["exp_avg"].dtype == torch.float32
    moved = (start - opt.params["sh_rest"].float()).mean().item()
    # 20 steps of lr 1.25e-4 downhill = 2.5e-3, far below one bf16 ulp at 0.1 per step (~4.9e-4 / 2)
    assert moved == pytest.approx(20 * 1.25e-4, rel=0.2)


def test_stochastic_rounding_is_unbiased_and_exact_on_bf16_values():
    x = torch.full((200_000,), 0.1 + 1e-4)
    y = stochastic_round_bf16(x, torch.Generator().manual_seed(0)).float()
    assert y.unique().numel() == 2
    assert y.mean().item() == pytest.approx(x[0].item(), abs=2e-6)
    exact = torch.randn(1000).to(torch.bfloat16)
    assert torch.equal(stochastic_round_bf16(exact.float()), exact)
