"""The SDN set encoder: binary codes invariant to the order and the size of a set (a set and the same set
with every member repeated), sets of different sizes in one batch, and the straight-through gradient."""
import pytest
import torch
from torch import nn

from methods.set_codes import SetEncoder, binarize_straight_through, set_mean


class _Features(nn.Sequential):
    out_features = 6

    def __init__(self):
        super().__init__(nn.Flatten(), nn.Linear(12, 6), nn.Tanh())


def _encoder(bits=16):
    torch.manual_seed(0)
    return SetEncoder(_Features(), bits)


def test_the_code_ignores_order_and_repetition():
    enc = _encoder()
    sets = torch.randn(3, 5, 3, 4)
    shuffled = sets[:, torch.randperm(5)]
    doubled = torch.cat([sets, sets], dim=1)
    logits = enc.logits(sets)
    assert torch.allclose(enc.logits(shuffled), logits, atol=1e-6)
    assert torch.allclose(enc.logits(doubled), logits, atol=1e-6)
    codes = enc(sets)
    assert set(codes.unique().tolist()) <= {0.0, 1.0} and codes.shape == (3, 16)
    assert torch.equal(codes, (logits > 0).float())


def test_padded_sets_of_different_sizes_share_a_batch():
    enc = _encoder()
    a, b = torch.randn(2, 3, 4), torch.randn(4, 3, 4)
    padded = torch.zeros(2, 4, 3, 4)
    padded[0, :2], padded[1] = a, b
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    together = enc.logits(padded, mask)
    assert torch.allclose(together[0], enc.logits(a[None])[0], atol=1e-6)
    assert torch.allclose(together[1], enc.logits(b[None])[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"set\(s\) \[0\] have no member"):
        set_mean(torch.zeros(2, 3, 5), torch.tensor([[False] * 3, [True] * 3]))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        set_mean(torch.zeros(2, 3, 5), torch.ones(2, 3))


def test_straight_through_gradient_is_the_sigmoid_derivative():
    logits = torch.tensor([-2.0, -0.1, 0.0, 0.3, 4.0], requires_grad=True)
    upstream = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0])
    bits = binarize_straight_through(logits)
    assert bits.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    (grad,) = torch.autograd.grad((bits * upstream).sum(), logits)
    s = torch.sigmoid(logits.detach())
    assert torch.allclose(grad, upstream * s * (1 - s))


def test_the_encoder_trains_through_the_bits():
    enc = _encoder(bits=4)
    sets = torch.randn(8, 5, 3, 4)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0]).expand(8, 4)
    loss = ((enc(sets) - target) ** 2).sum()
    loss.backward()
    # every parameter, the feature extractor's included, gets a gradient through the hard bits
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="does not say its out_features"):
        SetEncoder(nn.Flatten(), 8)
    with pytest.raises(ValueError, match="bits must be at least 1"):
        SetEncoder(_Features(), 0)
    with pytest.raises(ValueError, match=r"features must be \(n_sets, set_size, d\)"):
        set_mean(torch.zeros(3, 5))
