"""Set Distribution Networks: the learner's parts, its training, and how it serves the protocols."""
import pytest
import torch
from torch import nn

from datasets.labeled import Standardizer
from datasets.sklearn_sources import digits
from helpers import blobs
from methods.base import RunContext, embed_all
from methods.backbones import MLP
from methods.sdn import (EnergyAutoEncoder, Generator, LeadingDistance, SetDistributionNetwork, SetSampler, mode_seeking,
                         pull_away)
from methods.training import NonFiniteLossError


def adam(params, lr=1e-3):
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def sdn(data, iterations=200, **kwargs):
    torch.manual_seed(0)
    backbone = MLP(data.input_shape, hidden=(64,), out_features=32)
    options = dict(bits=16, noise_dim=8, hidden=64, latent=16, sets_per_step=4, set_sizes=(1, 2, 4),
                   prior_hidden=(32,), prior_steps=50)
    options.update(kwargs)
    return SetDistributionNetwork(backbone, adam, iterations, **options)


def toy():
    """Four classes of 12-d blobs, standardised per feature as the runner standardises (the margin 1 is
    set for that scale)."""
    data = blobs(n_classes=4, per_class=30, dim=12, spread=3.0)
    return Standardizer.fit(data.x)(data)


def four_digits():
    """The toy set of the energy checks: scikit-learn's digits 0-3 (720 samples, 64-d), standardised. (On
    Gaussian blobs the generator catches up with the discriminator within a hundred steps, so real and
    generated energies meet: the equilibrium, not a failure to learn.)"""
    data = digits()
    data = data.subset(torch.nonzero(data.y < 4).flatten())
    return Standardizer.fit(data.x)(data)


def energies_of_held_out_members(net, data, codes_of=None):
    """Energies of 36 members of each class (not in its 4-member set) given its set's code (or the code of
    the set ``codes_of[c]``), and of 36 generated members per set."""
    net.eval()
    with torch.no_grad():
        sets = data.x[torch.stack([torch.nonzero(data.y == c).flatten()[:4] for c in range(4)])]
        codes = net.set_encoder(sets)
        given = codes if codes_of is None else codes[codes_of]
        real = torch.cat([net.discriminator(data.x[data.y == c][4:40], given[c].expand(36, -1)) for c in range(4)])
        fakes = net.generate(codes, 36, torch.Generator().manual_seed(1))
        fake = torch.cat([net.discriminator(fakes[c], codes[c].expand(36, -1)) for c in range(4)])
    return real, fake


def test_energies_are_lower_on_real_than_on_generated_inputs_after_a_short_training():
    data = four_digits()
    net = sdn(data, iterations=200)
    net.fit(data, RunContext(progress=False))
    real, fake = energies_of_held_out_members(net, data)
    assert real.mean() < fake.mean()
    assert float((real[:, None] < fake[None, :]).float().mean()) > 0.6  # most real-generated pairs in order
    # and a real member has a lower energy given its own set's code than given another class's
    wrong, _ = energies_of_held_out_members(net, data, codes_of=torch.tensor([1, 2, 3, 0]))
    assert real.mean() < wrong.mean()


def test_trained_codes_let_the_energy_tell_the_classes_apart():
    data = toy()
    net = sdn(data, iterations=300, latent=4)  # a bottleneck below the 12 features: not the identity map
    net.fit(data, RunContext(progress=False))
    emb = embed_all(net, data.x)
    support = torch.cat([torch.nonzero(data.y == c).flatten()[:5] for c in range(4)])
    query = torch.cat([torch.nonzero(data.y == c).flatten()[5:] for c in range(4)])
    scores = net.adapt(emb[support], data.y[support]).score(emb[query])
    assert scores.shape == (len(query), 4)
    assert float((scores.argmax(1) == data.y[query]).float().mean()) > 0.8  # chance: 0.25


def test_adapt_uses_the_code_the_set_encoder_gives_the_support_set():
    data = toy()
    net = sdn(data, iterations=20)
    net.fit(data, RunContext(progress=False))
    emb = embed_all(net, data.x)
    support = torch.nonzero(data.y == 2).flatten()[:6]
    scorer = net.adapt(emb[support], torch.zeros(6, dtype=torch.long))
    assert torch.equal(scorer.codes[0], net.encode_sets(data.x[support][None])[0])
    # the score is minus the discriminator's energy given that code
    with torch.no_grad():
        net.eval()
        expected = -net.discriminator(data.x[:7], scorer.codes.expand(7, -1))
    torch.testing.assert_close(scorer.score(emb[:7])[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_generate_and_sample_shapes_ranges_and_seeds():
    data = toy()
    net = sdn(data, iterations=10)
    net.fit(data, RunContext(progress=False))
    codes = net.sample_codes(5, torch.Generator().manual_seed(3))
    assert codes.shape == (5, 16) and set(codes.unique().tolist()) <= {0.0, 1.0}
    again = net.sample_codes(5, torch.Generator().manual_seed(3))
    assert torch.equal(codes, again)
    out = net.generate(codes, 7, torch.Generator().manual_seed(0))
    assert out.shape == (5, 7, 12)
    low, high = data.x.min(0).values, data.x.max(0).values
    assert bool((out >= low - 1e-5).all()) and bool((out <= high + 1e-5).all())
    assert torch.equal(out, net.generate(codes, 7, torch.Generator().manual_seed(0)))


def test_leading_distance_reads_only_the_leading_entries():
    dist = LeadingDistance(3)
    a, b = torch.randn(4, 10), torch.randn(5, 10)
    b2 = b.clone()
    b2[:, 3:] = 100.0
    torch.testing.assert_close(dist(a, b), torch.cdist(a[:, :3], b[:, :3]))
    torch.testing.assert_close(dist(a, b2), dist(a, b))


def test_generator_range_and_energy_by_hand():
    gen = Generator(bits=3, noise_dim=2, hidden=8, shape=(2, 2))
    x = torch.tensor([[0.0, 1.0, -2.0, 5.0], [1.0, 3.0, 2.0, 6.0]]).view(2, 2, 2)
    gen.set_range(x)
    out = gen(torch.ones(6, 3), torch.randn(6, 2))
    flat = out.view(6, 4)
    assert bool((flat >= torch.tensor([0.0, 1.0, -2.0, 5.0])).all() and (flat <= torch.tensor([1.0, 3.0, 2.0, 6.0])).all())
    disc = EnergyAutoEncoder(bits=3, hidden=8, latent=2, shape=(4,))
    inputs, codes = torch.randn(5, 4), torch.randint(0, 2, (5, 3)).float()
    recon = disc.dec(torch.cat([disc.enc(inputs), 2 * codes - 1], 1))
    loop = torch.stack([((inputs[i] - recon[i]) ** 2).mean() for i in range(5)])
    torch.testing.assert_close(disc(inputs, codes), loop)


def test_pull_away_term_by_brute_force():
    z = torch.randn(5, 3)
    loop = sum(float(torch.nn.functional.cosine_similarity(z[i], z[j], dim=0) ** 2)
               for i in range(5) for j in range(5) if i != j) / 20
    assert float(pull_away(z)) == pytest.approx(loop, rel=1e-5)
    assert float(pull_away(z[:1])) == 0.0


def test_mode_seeking_term_by_brute_force():
    torch.manual_seed(0)
    fakes, noise = torch.randn(6, 2, 2), torch.randn(6, 3)  # two sets of three members
    ratios = []
    for s in range(2):
        for k in range(2):
            a, b = 3 * s + k, 3 * s + k + 1
            ratios.append(float((fakes[a] - fakes[b]).abs().mean() / (noise[a] - noise[b]).abs().mean()))
    assert float(mode_seeking(fakes, noise, 3)) == pytest.approx(1 / (sum(ratios) / 4 + 1e-5), rel=1e-5)
    assert float(mode_seeking(fakes, noise, 1)) == 0.0


def test_mode_seeking_keeps_the_members_of_a_generated_set_apart():
    data = four_digits()

    def spread(weight):
        net = sdn(data, iterations=200, mode_seeking_weight=weight)
        net.fit(data, RunContext(progress=False))
        codes = net.encode_sets(data.x[torch.stack([torch.nonzero(data.y == c).flatten()[:4] for c in range(4)])])
        return float(net.generate(codes, 8, torch.Generator().manual_seed(0)).std(1).mean())
    real = float(torch.stack([data.x[data.y == c][:8] for c in range(4)]).std(1).mean())
    without, with_term = spread(0.0), spread(1.0)
    assert without < 0.25 * real  # collapse: the noise is ignored
    assert with_term > 2 * without and with_term > 0.4 * real


def test_set_sampler_draws_sets_of_distinct_classes_with_their_sizes():
    labels = torch.arange(5).repeat_interleave(10)
    sampler = SetSampler(labels, sets_per_step=8, set_sizes=(1, 3), extra_members=2, seed=0)
    assert sampler.sets_per_step == 5  # capped at the classes
    for _ in range(10):
        sets = sampler.draw()
        classes = labels[sets.inputs[:, 0]]
        assert len(set(classes.tolist())) == len(classes)
        sizes = sets.mask.sum(1)
        assert set(sizes.tolist()) <= {1, 3}
        for s in range(len(classes)):
            members = sets.inputs[s][sets.mask[s]]
            assert bool((labels[members] == classes[s]).all()) and len(set(members.tolist())) == int(sizes[s])
            targets = sets.targets[sets.target_set == s]
            assert len(targets) == int(sizes[s]) + 2 and set(members.tolist()) <= set(targets.tolist())
            assert bool((labels[targets] == classes[s]).all())


def test_set_sampler_errors_name_the_fix():
    labels = torch.arange(3).repeat_interleave(4)
    with pytest.raises(ValueError, match="extra_members"):
        SetSampler(labels, 4, (8,), 4, seed=0)
    with pytest.raises(ValueError, match="sets_per_step"):
        SetSampler(labels, 1, (1,), 0, seed=0)


def test_fit_is_reproducible_and_stops_on_a_nan_loss():
    data = toy()
    a, b = sdn(data, iterations=15), sdn(data, iterations=15)
    ra, rb = a.fit(data, RunContext(progress=False)), b.fit(data, RunContext(progress=False))
    assert ra.loss_curve == rb.loss_curve
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)
    bad = data.with_inputs(data.x.clone())
    bad.x[::5, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="learning rate"):
        sdn(bad, iterations=5).fit(bad, RunContext(progress=False))


def test_check_refuses_data_it_cannot_generate():
    data = toy()
    with pytest.raises(ValueError, match="shape"):
        sdn(data).check(blobs(n_classes=4, per_class=30, dim=5))

    class NoShape(nn.Linear):
        out_features = 4
    with pytest.raises(ValueError, match="input_shape"):
        SetDistributionNetwork(NoShape(3, 4), adam, 1)
