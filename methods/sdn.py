"""Set Distribution Networks (Zhai, Talbott, Guestrin & Susskind 2020): a generative model of sets.

Four parts, trained together:

- set encoder (``methods.set_codes.SetEncoder``): code(S) = binarize(W mean_{x in S} c(x) + b), B bits,
  straight-through; c is the run's backbone;
- set prior (``methods.made.MADE``): an autoregressive model of the codes, so new sets can be sampled;
- generator G(z, e): the code (as +-1) and Gaussian noise e through an MLP to one input; each output
  feature is squeezed into the range that feature spans in the training split,
  low + (high - low) * sigmoid(.), so that generated inputs live where real ones do;
- discriminator: an auto-encoder energy conditioned on the code (EBGAN): D(x | z) = mean over the input's
  features of (x - dec(enc(x), z))^2. ``enc`` sees the input alone; the code enters the decoder only, so
  a query's latent is computed once and decoded under every class's code.

Training, one step (the sets: ``sets_per_step`` training classes, one set each, of a size drawn from
``set_sizes``; each set's real targets are its members and ``extra_members`` more of its class):

1. encoder + discriminator: E_real + relu(m - E_fake) + mismatch_weight * relu(m - E_mismatch), where
   E_real is the energy of the real targets given their set's code, E_fake that of ``fakes_per_set``
   generated members per set given the code they were generated from, and E_mismatch that of the real
   targets given the code of another class's set;
2. generator: E of fresh generated members given their code, plus ``pull_away_weight`` times EBGAN's
   pulling-away term (mean squared cosine between the discriminator latents of the generated members),
   plus ``mode_seeking_weight`` times the mode-seeking term of Mao et al. 2019 (1 / the ratio of the
   distance between two members generated from one code to the distance between their noises), measured
   in the discriminator's latent space (``mode_seeking_space: latent``; ``inputs``: on the inputs);
3. prior: the negative log-likelihood of the step's codes (detached).
After the last step the prior takes ``prior_steps`` more steps on codes of the final encoder (the codes
of a moving encoder are a moving target).

Choices the seed leaves open (the paper's text was not available), each in the record's notes:
- the margin m = 1 by default: on standardised data, reconstructing every feature by its training mean
  gives an energy of about 1, so generated members must be reconstructed no better than that;
- the mismatch term (real members, wrong code) is not in the seed: without it the encoder learns only
  through the adversarial game, which in a few hundred steps leaves codes that barely depend on the set
  (``mismatch_weight: 0`` turns it off);
- the codes are deterministic (hard threshold of the logit at 0), so a set always gets the same code at
  test time; in training a BatchNorm backbone (Conv-4, the MLP) normalises over the step's whole batch of
  set members, padding repeats included, so a training set's code also depends on the other sets of its
  step, as any BatchNorm feature does;
- the mode-seeking term is not in the seed either: without it the generator ignores its noise and every
  member of a generated set is the same input (measured on digits at 300 steps: a mean per-feature
  standard deviation within a generated set of 0.035 against 0.45 within a real one; with the term in the
  latent space, 0.33; on the inputs, 0.44, but on Fashion-MNIST it then buys its spread with pixel
  speckle, hence the latent space by default).

As a learner of the suite: ``embed(x)`` packs [code logits of the one-member set {x} (B), the
discriminator latent enc(x), x itself (flattened)] into one vector, so a protocol can embed each test
input once. ``adapt`` turns each class's support into its code (the bits of the mean of its members'
logits, which is the encoder's code of the support set, the head being affine) and scores a query by
-D(query | code). Retrieval, verification and k-NN use the Euclidean distance between code logits
(``LeadingDistance``: the first B entries only). The set-generation protocol uses ``encode_sets``,
``generate`` and ``sample_codes``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence, get_args

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from torch import Tensor, nn
from tqdm.auto import tqdm

from datasets.labeled import LabeledData
from methods.base import MORE_TRAINING_CLASSES, EmbeddingLearner, FitReport, RunContext
from methods.bounds import Count, CountOrZero, NonNegative, Positive, Steps, TwoOrMore
from methods.made import MADE
from methods.set_codes import SetEncoder
from methods.training import NonFiniteLossError, build_optimizer

ModeSeekingSpace = Literal["latent", "inputs"]  # where the mode-seeking term measures distances


class LeadingDistance(LpDistance):
    """Euclidean distance between the first ``dims`` entries of the embeddings (the rest is ignored)."""

    def __init__(self, dims: int, **kwargs) -> None:
        super().__init__(normalize_embeddings=False, **kwargs)
        self.dims = dims

    def forward(self, query_emb: Tensor, ref_emb: Tensor | None = None) -> Tensor:
        ref = None if ref_emb is None else ref_emb[:, :self.dims]
        return super().forward(query_emb[:, :self.dims], ref)


def signed(codes: Tensor) -> Tensor:
    """0/1 codes as -1/+1, the form the generator and the decoder read."""
    return 2 * codes - 1


class Generator(nn.Module):
    """G(z, e): (n, bits) codes and (n, noise_dim) noise -> (n, *shape) inputs in [low, high] per feature."""

    def __init__(self, bits: int, noise_dim: int, hidden: int, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        features = math.prod(self.shape)
        self.noise_dim = noise_dim
        self.net = nn.Sequential(nn.Linear(bits + noise_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, features))
        self.register_buffer("low", torch.zeros(features))
        self.register_buffer("high", torch.ones(features))

    def set_range(self, x: Tensor) -> None:
        """Each output feature's range: the range of that feature over ``x`` (n, *shape)."""
        flat = x.reshape(len(x), -1)
        self.low.copy_(flat.min(0).values)
        self.high.copy_(flat.max(0).values)

    def forward(self, codes: Tensor, noise: Tensor) -> Tensor:
        out = torch.sigmoid(self.net(torch.cat([signed(codes), noise], dim=1)))
        return (self.low + (self.high - self.low) * out).view(len(codes), *self.shape)


class EnergyAutoEncoder(nn.Module):
    """D(x | z) = mean_f (x_f - dec(enc(x), z)_f)^2: low for inputs that the code's decoder reconstructs."""

    def __init__(self, bits: int, hidden: int, latent: int, shape: Sequence[int]) -> None:
        super().__init__()
        features = math.prod(shape)
        self.latent_dim = latent
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, latent))
        self.dec = nn.Sequential(nn.Linear(latent + bits, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, features))

    def energy_from(self, latent: Tensor, flat_x: Tensor, codes: Tensor) -> Tensor:
        """(n,) energies of inputs given as their latent (n, latent) and flattened values (n, features)."""
        recon = self.dec(torch.cat([latent, signed(codes)], dim=1))
        return (flat_x - recon).pow(2).mean(1)

    def forward(self, x: Tensor, codes: Tensor) -> Tensor:
        return self.energy_from(self.enc(x), x.reshape(len(x), -1), codes)


def mode_seeking(fakes: Tensor, noise: Tensor, per_set: int) -> Tensor:
    """The mode-seeking term of Mao et al. (CVPR 2019) over pairs of members generated from one code:
    1 / (mean |G(z, e1) - G(z, e2)| / mean |e1 - e2|), so that different noise gives different members.
    ``fakes`` (n_sets * per_set, ...) and ``noise`` (n_sets * per_set, noise_dim) lie set by set."""
    if per_set < 2:
        return fakes.sum() * 0
    out = fakes.reshape(-1, per_set, fakes[0].numel())
    eps = noise.reshape(-1, per_set, noise.shape[1])
    ratio = (out[:, 1:] - out[:, :-1]).abs().mean(2) / (eps[:, 1:] - eps[:, :-1]).abs().mean(2)
    return 1.0 / (ratio.mean() + 1e-5)


def pull_away(latent: Tensor) -> Tensor:
    """EBGAN's pulling-away term: the mean squared cosine similarity over distinct pairs of rows."""
    n = len(latent)
    if n < 2:
        return latent.sum() * 0
    unit = F.normalize(latent, dim=1)
    cos2 = (unit @ unit.T).pow(2)
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


@dataclass
class TrainingSets:
    """One step's sets: ``inputs`` (S, max_size) indices padded by repetition with ``mask`` marking the
    members; ``targets`` (T,) indices of the real targets and ``target_set`` (T,) the set each belongs to."""

    inputs: Tensor
    mask: Tensor
    targets: Tensor
    target_set: Tensor


class SetSampler:
    """Draws, per step, ``sets_per_step`` distinct classes (capped at the classes that have enough members)
    and from each a set of a size drawn from ``set_sizes`` plus ``extra_members`` more members."""

    def __init__(self, labels: Tensor, sets_per_step: int, set_sizes: Sequence[int], extra_members: int,
                 seed: int) -> None:
        self.set_sizes = [int(s) for s in set_sizes]
        if not self.set_sizes or min(self.set_sizes) < 1:
            raise ValueError(f"SDN: set_sizes must be positive sizes, got {list(set_sizes)}")
        if sets_per_step < 2:
            raise ValueError(f"SDN: sets_per_step must be at least 2 (the mismatch term pairs sets of two "
                             f"classes), got {sets_per_step}")
        self.need = max(self.set_sizes) + int(extra_members)
        members = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]
        self.members = [m for m in members if len(m) >= self.need]
        if len(self.members) < 2:
            raise ValueError(f"SDN needs two training classes with at least max(set_sizes) + extra_members = "
                             f"{self.need} samples each; the training split has {len(self.members)}. "
                             + ("Lower method.learner.set_sizes or method.learner.extra_members, or "
                                + MORE_TRAINING_CLASSES if len(members) >= 2  # smaller sets fit more classes
                                else MORE_TRAINING_CLASSES[0].upper() + MORE_TRAINING_CLASSES[1:]))
        self.sets_per_step = min(int(sets_per_step), len(self.members))
        self.extra = int(extra_members)
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self) -> TrainingSets:
        g = self.generator
        classes = torch.randperm(len(self.members), generator=g)[:self.sets_per_step]
        sizes = torch.tensor(self.set_sizes)[torch.randint(len(self.set_sizes), (len(classes),), generator=g)]
        width = int(sizes.max())
        inputs = torch.empty(len(classes), width, dtype=torch.long)
        mask = torch.zeros(len(classes), width, dtype=torch.bool)
        targets, target_set = [], []
        for s, (c, n) in enumerate(zip(classes.tolist(), sizes.tolist())):
            pool = self.members[c]
            chosen = pool[torch.randperm(len(pool), generator=g)[:n + self.extra]]
            inputs[s] = chosen[torch.arange(width) % n]  # padding repeats members; the mask leaves it out
            mask[s, :n] = True
            targets.append(chosen)
            target_set.append(torch.full((len(chosen),), s))
        return TrainingSets(inputs, mask, torch.cat(targets), torch.cat(target_set))


@dataclass(frozen=True)
class EnergyScorer:
    """Scores (n_query, n_way): minus the energy of each query given each class's code."""

    net: "SetDistributionNetwork"
    codes: Tensor

    def score(self, query_emb: Tensor) -> Tensor:
        return -self.net.energies(query_emb, self.codes)


class SetDistributionNetwork(EmbeddingLearner):
    name = "sdn"
    score_episodes = None  # episodes go through ``adapt``: one code per class

    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: Steps,
                 bits: Count = 64, noise_dim: Count = 32, hidden: Count = 256, latent: Count = 32,
                 sets_per_step: TwoOrMore = 8, set_sizes: Sequence[Count] = (1, 2, 4, 8),
                 extra_members: CountOrZero = 4, fakes_per_set: Count = 4, margin: Positive = 1.0,
                 mismatch_weight: NonNegative = 1.0, pull_away_weight: NonNegative = 0.1,
                 mode_seeking_weight: NonNegative = 1.0, mode_seeking_space: ModeSeekingSpace = "latent",
                 prior_hidden: Sequence[Count] = (256, 256), prior_steps: Steps = 200) -> None:
        super().__init__()
        if fakes_per_set < 1:
            raise ValueError(f"SDN: fakes_per_set must be at least 1, got {fakes_per_set}")
        if margin <= 0:
            raise ValueError(f"SDN: the energy margin must be positive, got {margin}")
        shape = getattr(backbone, "input_shape", None)
        if shape is None:
            raise ValueError(f"SDN generates inputs of the backbone's input shape, but {type(backbone).__name__} does "
                             "not say its input_shape")
        self.input_shape = tuple(int(s) for s in shape)
        self.bits = bits
        self.set_encoder = SetEncoder(backbone, bits)
        self.encoder = backbone
        self.generator = Generator(bits, noise_dim, hidden, self.input_shape)
        self.discriminator = EnergyAutoEncoder(bits, hidden, latent, self.input_shape)
        self.prior = MADE(bits, prior_hidden)
        self.optimizer, self.iterations = optimizer, iterations
        self.sets_per_step, self.set_sizes, self.extra_members = sets_per_step, list(set_sizes), extra_members
        self.fakes_per_set, self.margin = fakes_per_set, float(margin)
        self.mismatch_weight, self.pull_away_weight = float(mismatch_weight), float(pull_away_weight)
        self.mode_seeking_weight = float(mode_seeking_weight)
        if mode_seeking_space not in get_args(ModeSeekingSpace):
            raise ValueError(f"SDN: mode_seeking_space must be 'latent' or 'inputs', got {mode_seeking_space!r}")
        self.mode_seeking_space = mode_seeking_space
        self.prior_steps = int(prior_steps)
        self.distance = LeadingDistance(bits)

    # ---- the learner interface -------------------------------------------------------------------------
    def check(self, train: LabeledData) -> None:
        if not isinstance(train.x, Tensor):
            raise ValueError(f"SDN generates whole inputs and needs the training inputs as one tensor, but they are "
                             f"{type(train.x).__name__} (images decoded on demand); use a data set held in memory")
        if tuple(train.input_shape) != self.input_shape:
            raise ValueError(f"SDN was built for inputs of shape {self.input_shape} but the data has "
                             f"{tuple(train.input_shape)}")
        self.sampler(train.y, seed=0)

    def sampler(self, labels: Tensor, seed: int) -> SetSampler:
        return SetSampler(labels, self.sets_per_step, self.set_sizes, self.extra_members, seed)

    def member_logits(self, x: Tensor) -> Tensor:
        """(n, bits) code logits of the one-member sets {x_i}; the mean over a set's members is its code logit."""
        return self.set_encoder.to_logits(self.encoder(x))

    def embed(self, x: Tensor) -> Tensor:
        return torch.cat([self.member_logits(x), self.discriminator.enc(x), x.reshape(len(x), -1)], dim=1)

    def adapt(self, support_emb: Tensor, support_y: Tensor) -> EnergyScorer:
        n_way = int(support_y.max()) + 1
        logits = support_emb[:, :self.bits]
        sums = torch.zeros(n_way, self.bits, dtype=logits.dtype).index_add_(0, support_y, logits)
        counts = torch.bincount(support_y, minlength=n_way)
        if int(counts.min()) == 0:
            raise ValueError(f"support labels must cover 0..{n_way - 1}; label {int(torch.argmin(counts))} has no sample")
        return EnergyScorer(self, ((sums / counts[:, None]) > 0).to(logits.dtype))

    @torch.no_grad()
    def energies(self, packed: Tensor, codes: Tensor, chunk: int = 4096) -> Tensor:
        """(n, n_codes) energies of the inputs packed by ``embed`` given each code (0/1, (n_codes, bits))."""
        was = self.training
        self.eval()
        device = self.device
        latent_end = self.bits + self.discriminator.latent_dim
        latent, flat = packed[:, self.bits:latent_end].to(device), packed[:, latent_end:].to(device)
        out = torch.empty(len(packed), len(codes))
        for j, code in enumerate(codes.to(device)):
            for start in range(0, len(packed), chunk):
                rows = slice(start, start + chunk)
                repeated = code[None].expand(len(latent[rows]), -1)
                out[rows, j] = self.discriminator.energy_from(latent[rows], flat[rows], repeated).float().cpu()
        self.train(was)
        return out

    # ---- generation, for the set-generation protocol ----------------------------------------------------
    @torch.no_grad()
    def encode_sets(self, sets: Tensor) -> Tensor:
        """(n_sets, bits) 0/1 codes of ``sets`` (n_sets, set_size, *input_shape)."""
        was = self.training
        self.eval()
        codes = self.set_encoder(sets.to(self.device)).cpu()
        self.train(was)
        return codes

    @torch.no_grad()
    def generate(self, codes: Tensor, per_set: int, generator: torch.Generator | None = None) -> Tensor:
        """(n_sets, per_set, *input_shape) new members of the sets whose codes are ``codes``."""
        noise = torch.randn(len(codes) * per_set, self.generator.noise_dim, generator=generator)
        repeated = codes.repeat_interleave(per_set, dim=0)
        out = self.generator(repeated.to(self.device), noise.to(self.device)).cpu()
        return out.view(len(codes), per_set, *self.input_shape)

    @torch.no_grad()
    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, bits) new set codes drawn from the prior."""
        return self.prior.sample(n, generator).cpu()

    # ---- training ---------------------------------------------------------------------------------------
    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        sampler = self.sampler(train.y, seed=ctx.seed)
        self.to(ctx.device).train()
        x = train.x.to(ctx.device)
        self.generator.set_range(x)
        noise_gen = ctx.generator(offset=17)
        theta = build_optimizer(self.optimizer, [*self.set_encoder.parameters(), *self.discriminator.parameters()])
        psi = build_optimizer(self.optimizer, list(self.generator.parameters()))
        prior_opt = build_optimizer(self.optimizer, list(self.prior.parameters()))
        report = FitReport()
        every = max(1, self.iterations // 100)
        tail = max(1, self.iterations // 10)
        history: dict[str, list[float]] = {k: [] for k in ("real", "fake", "mismatch", "generator", "prior_nll")}
        bar = tqdm(range(self.iterations), desc=f"fit {self.name}", disable=not ctx.progress, leave=False,
                   mininterval=1.0)
        for step in bar:
            sets = sampler.draw()
            with ctx.autocast():  # bf16 mixed precision for the encoder, generator and discriminator if asked
                codes = self.set_encoder(x[sets.inputs.to(ctx.device)], sets.mask.to(ctx.device))
                target_codes = codes[sets.target_set.to(ctx.device)]
                targets = x[sets.targets.to(ctx.device)]
                fake_codes = codes.repeat_interleave(self.fakes_per_set, dim=0)

                # 1. encoder + discriminator
                with torch.no_grad():
                    fakes = self.generator(fake_codes.detach(), self._noise(len(fake_codes), noise_gen, ctx.device))
                e_real = self.discriminator(targets, target_codes).mean()
                e_fake = self.discriminator(fakes, fake_codes).mean()
                other = (sets.target_set.to(ctx.device) + 1) % len(codes)  # each set's neighbour: another class
                e_mis = self.discriminator(targets, codes[other]).mean()
                loss_d = (e_real + F.relu(self.margin - e_fake)
                          + self.mismatch_weight * F.relu(self.margin - e_mis))
            self._step(theta, loss_d, "encoder + discriminator", step)

            # 2. generator
            with ctx.autocast():
                fixed = fake_codes.detach()
                noise = self._noise(len(fixed), noise_gen, ctx.device)
                fakes = self.generator(fixed, noise)
                e_gen = self.discriminator(fakes, fixed).mean()
                loss_g = (e_gen + self.pull_away_weight * pull_away(self.discriminator.enc(fakes))
                          + self.mode_seeking_weight * mode_seeking(self._seeking_space(fakes), noise,
                                                                    self.fakes_per_set))
            self._step(psi, loss_g, "generator", step)

            # 3. prior (float32: a density over codes)
            nll = -self.prior.log_prob(codes.detach().float()).mean()
            self._step(prior_opt, nll, "prior", step)

            for name, value in (("real", e_real), ("fake", e_fake), ("mismatch", e_mis), ("generator", loss_g),
                                ("prior_nll", nll)):
                history[name].append(float(value.detach()))
            if step % every == 0 or step == self.iterations - 1:
                report.loss_curve.append((step, float(loss_d.detach())))
                bar.set_postfix(real=f"{e_real.item():.3f}", fake=f"{e_fake.item():.3f}", refresh=False)
            report.final_loss = float(loss_d.detach())
        prior_nll = self.fit_prior(x, sampler, prior_opt, ctx)
        report.iterations = self.iterations
        report.notes.update({
            "bits": self.bits, "margin": self.margin, "mismatch_weight": self.mismatch_weight,
            "pull_away_weight": self.pull_away_weight,
            "mode_seeking_weight": self.mode_seeking_weight,
            "mode_seeking_space": self.mode_seeking_space, "sets_per_step": sampler.sets_per_step,
            "set_sizes": self.set_sizes, "extra_members": self.extra_members, "fakes_per_set": self.fakes_per_set,
            "prior_steps": self.prior_steps, "prior_nll_final": prior_nll,
            "energies_last_10pct": {k: sum(v[-tail:]) / max(1, len(v[-tail:])) for k, v in history.items()},
            "code": "hard threshold at 0, straight-through gradient"})
        return report

    def fit_prior(self, x: Tensor, sampler: SetSampler, opt: torch.optim.Optimizer, ctx: RunContext) -> float | None:
        """``prior_steps`` more prior steps on codes of the final encoder; the last step's NLL (nats per code)."""
        nll = None
        self.set_encoder.eval()
        for step in range(self.prior_steps):
            sets = sampler.draw()
            with torch.no_grad():
                codes = self.set_encoder(x[sets.inputs.to(ctx.device)], sets.mask.to(ctx.device))
            loss = -self.prior.log_prob(codes).mean()
            self._step(opt, loss, "prior (final fit)", step)
            nll = float(loss.detach())
        self.set_encoder.train()
        return nll

    def _seeking_space(self, fakes: Tensor) -> Tensor:
        return self.discriminator.enc(fakes) if self.mode_seeking_space == "latent" else fakes

    def _noise(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        return torch.randn(n, self.generator.noise_dim, generator=generator).to(device)

    def _step(self, opt: torch.optim.Optimizer, loss: Tensor, part: str, step: int) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"{self.name}: the {part} loss became {value} at step {step}. Lower the learning rate "
                "(method.learner.optimizer.lr=...) or check the inputs for NaNs; the run was stopped and its "
                "record marked failed.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

