"""MADE, the set prior of Set Distribution Networks: autoregressive by construction (checked through the
Jacobian), a normalised distribution over all codes, and it learns a toy distribution with dependent bits."""
import itertools
import math

import pytest
import torch

from methods.made import MADE


@pytest.mark.parametrize("bits, hidden", [(1, (4,)), (2, (3,)), (6, (5, 7)), (9, (16, 8, 16))])
def test_output_i_depends_only_on_the_bits_before_it(bits, hidden):
    torch.manual_seed(0)
    made = MADE(bits, hidden)
    for p in made.parameters():  # no weight is zero by chance
        p.data.normal_()
    z = torch.rand(1, bits)
    jacobian = torch.autograd.functional.jacobian(lambda v: made.logits(v)[0], z)[:, 0, :]  # (out i, in j)
    for i in range(bits):
        for j in range(bits):
            if j >= i:
                assert jacobian[i, j] == 0, (i, j)
    # and every allowed connection exists: output i has a path from every input j < i (mask products;
    # the Jacobian at one point can miss a path through a unit whose ReLU is off there)
    paths = made.hidden_layers[0].mask
    for layer in list(made.hidden_layers[1:]) + [made.output]:
        paths = layer.mask @ paths
    assert torch.equal(paths > 0, torch.ones(bits, bits).tril(-1).bool())


def test_the_probabilities_of_all_codes_sum_to_one():
    torch.manual_seed(1)
    made = MADE(5, (8, 8))
    for p in made.parameters():
        p.data.normal_()
    codes = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))
    with torch.no_grad():
        assert float(made.log_prob(codes).exp().sum()) == pytest.approx(1.0, abs=1e-5)


def _toy(n, gen):
    first = (torch.rand(n, generator=gen) < 0.5).float()
    last = (torch.rand(n, generator=gen) < 0.9).float()
    return torch.stack([first, first, 1 - first, last], dim=1)  # bits 2 and 3 copy / negate bit 1


def test_it_learns_dependent_bits_and_samples_them():
    torch.manual_seed(2)
    gen = torch.Generator().manual_seed(3)
    made = MADE(4, (16, 16))
    optimiser = torch.optim.Adam(made.parameters(), lr=1e-2)
    for _ in range(400):
        loss = -made.log_prob(_toy(64, gen)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    entropy = math.log(2) - (0.9 * math.log(0.9) + 0.1 * math.log(0.1))  # nats: bit 1 and bit 4
    with torch.no_grad():
        assert float(-made.log_prob(_toy(4000, gen)).mean()) == pytest.approx(entropy, abs=0.05)
    samples = made.sample(2000, generator=torch.Generator().manual_seed(4))
    assert float((samples[:, 1] == samples[:, 0]).float().mean()) > 0.98
    assert float((samples[:, 2] == 1 - samples[:, 0]).float().mean()) > 0.98
    assert 0.45 < float(samples[:, 0].mean()) < 0.55 and 0.87 < float(samples[:, 3].mean()) < 0.93
    again = made.sample(2000, generator=torch.Generator().manual_seed(4))
    assert torch.equal(samples, again)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="bits must be at least 1"):
        MADE(0)
    with pytest.raises(ValueError, match="each of at least bits - 1 = 9 units"):
        MADE(10, (8,))
    with pytest.raises(ValueError, match=r"codes must be \(n, 3\)"):
        MADE(3, (4,)).log_prob(torch.zeros(2, 4))
