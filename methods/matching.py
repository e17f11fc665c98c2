"""Matching networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu, Wierstra 2016).

A query x̂ is classified by attention over the support set S = {(x_i, y_i)}:

    P(y | x̂, S) = Σ_i a(x̂, x_i) onehot(y_i),   a(x̂, x_i) = softmax_i(s · cos(f(x̂), g(x_i)))

with s = 1 in the paper (``scale``; CloserLook's re-implementation multiplies by 100). Scores handed to
the protocols are the log-probabilities log P(y | x̂, S), computed stably as
logsumexp over the class's support samples minus logsumexp over all support samples; training minimises
their negative log-likelihood on episodes (``methods.episodic``).

Without full context embeddings (``fce: false``), f = g = the backbone. With them (``fce: true``), on top of
the backbone embedding f'(x) = g'(x):

- support: g(x_i, S) = g'(x_i) + h→_i + h←_i, the two directions of a bidirectional LSTM (hidden size d)
  run over g'(x_1..x_n) in the order the support set is given (class by class in this suite);
- query: an attention LSTM run for K steps (``fce_steps``; null = the support set size, as in the
  low-shot-shrink-hallucinate / easyfsl implementations; the paper leaves K open):
      r_{k-1} = Σ_i softmax_i(h_{k-1}ᵀ g(x_i)) g(x_i)
      ĥ_k, c_k = LSTMCell([f'(x̂), r_{k-1}], (h_{k-1}, c_{k-1}))
      h_k = ĥ_k + f'(x̂),   h_0 = f'(x̂), c_0 = 0,   f(x̂, S) = h_K.
  The paper writes the LSTM's state as the concatenation [h, r] with input f'; feeding r as an input
  instead gives the very same gate pre-activations (a linear map of f', h and r) and an output of size d.

``adapt`` receives backbone embeddings (``embed``), so the FCE layers run inside the episode's scorer.
Retrieval, verification and k-NN use the backbone embedding with cosine similarity (no support set there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity
from torch import Tensor, nn

from datasets.episodes import check_episode_shape
from datasets.labeled import LabeledData
from methods.base import EmbeddingLearner, FitReport, RunContext
from methods.bounds import Count, Positive, Steps, TwoOrMore
from methods.episodic import fit_episodic


def attention_log_probs(query: Tensor, support: Tensor, support_y: Tensor, n_way: int, scale: float = 1.0) -> Tensor:
    """(n_query, n_way) log Σ_{i: y_i = c} softmax_i(scale · cos(query, support_i)).

    A class with no support sample gets -inf (probability 0).
    """
    cos = F.normalize(query, dim=1) @ F.normalize(support, dim=1).T  # (n_query, n_support)
    logits = scale * cos
    log_attention = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    member = F.one_hot(support_y, n_way).T.bool()  # (n_way, n_support)
    masked = log_attention[:, None, :].masked_fill(~member[None], float("-inf"))  # (n_query, n_way, n_support)
    return torch.logsumexp(masked, dim=2)


class FullContextEmbedding(nn.Module):
    """The two FCE parts of the paper on d-dimensional backbone embeddings."""

    def __init__(self, dim: int, steps: int | None = None) -> None:
        super().__init__()
        if steps is not None and steps < 1:
            raise ValueError(f"fce_steps must be >= 1 or null (the support set size), got {steps}")
        self.dim = dim
        self.steps = steps
        self.support_lstm = nn.LSTM(dim, dim, num_layers=1, batch_first=True, bidirectional=True)
        self.query_cell = nn.LSTMCell(2 * dim, dim)

    def _check(self, emb: Tensor) -> None:
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"full context embeddings were built for {self.dim}-d backbone embeddings, "
                             f"got shape {tuple(emb.shape)}; set method.learner.feature_dim to the backbone's width")

    def encode_support(self, support: Tensor) -> Tensor:
        """g(x_i, S): the backbone embedding plus both directions of the bidirectional LSTM."""
        self._check(support)
        hidden, _ = self.support_lstm(support[None])  # (1, n, 2d): forward half, then backward half
        hidden = hidden[0]
        return support + hidden[:, :self.dim] + hidden[:, self.dim:]

    def encode_query(self, query: Tensor, support_g: Tensor) -> Tensor:
        """f(x̂, S): the attention LSTM run for K steps over the encoded support set ``support_g``."""
        self._check(query)
        steps = self.steps if self.steps is not None else len(support_g)
        h, c = query, torch.zeros_like(query)
        for _ in range(steps):
            read = torch.softmax(h @ support_g.T, dim=1) @ support_g
            h, c = self.query_cell(torch.cat([query, read], dim=1), (h, c))
            h = h + query
        return h


def encode_queries(query_emb: Tensor, support: Tensor, fce: FullContextEmbedding | None) -> Tensor:
    """f(x̂, S): the queries on the support's device, through the FCE attention LSTM when there is one."""
    query = query_emb.to(support.device)
    return query if fce is None else fce.encode_query(query, support)


@dataclass(frozen=True)
class MatchingScorer:
    """One episode: the (encoded) support set and its labels; scores are log P(y | x̂, S)."""

    support: Tensor  # g(x_i, S), (n_support, d)
    support_y: Tensor
    n_way: int
    scale: float
    fce: FullContextEmbedding | None = None

    def score(self, query_emb: Tensor) -> Tensor:
        query = encode_queries(query_emb, self.support, self.fce)
        return attention_log_probs(query, self.support, self.support_y, self.n_way, self.scale).to(query_emb.device)


@dataclass(frozen=True)
class ConceptMatchScorer:
    """One concept from a set with no negatives (set retrieval): a query's attention mass on the set before
    the normalisation over classes, log sum_i exp(scale * cos(f(x), g(x_i, S))). With one class, the
    normalised log P(y | x, S) is 0 for every query and cannot rank a pool."""

    support: Tensor
    scale: float
    fce: FullContextEmbedding | None = None

    def score(self, query_emb: Tensor) -> Tensor:
        query = encode_queries(query_emb, self.support, self.fce)
        cos = F.normalize(query, dim=1) @ F.normalize(self.support, dim=1).T
        return torch.logsumexp(self.scale * cos, dim=1, keepdim=True).to(query_emb.device)


class MatchingNetwork(EmbeddingLearner):
    score_episodes = None  # its own adapt: the few-shot protocol scores its episodes one at a time

    def __init__(self, backbone: nn.Module, optimizer: Callable, iterations: Steps, n_way: TwoOrMore = 5,
                 k_shot: Count = 5, n_query: Count = 5, fce: bool = False, fce_steps: Count | None = None,
                 feature_dim: Count | None = None, scale: Positive = 1.0) -> None:
        super().__init__()
        self.encoder = backbone
        self.optimizer = optimizer
        self.iterations = iterations
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.scale = float(scale)
        self.distance = CosineSimilarity()
        self.fce: FullContextEmbedding | None = None
        if fce:
            dim = feature_dim if feature_dim is not None else getattr(backbone, "out_features", None)
            if dim is None:
                raise ValueError("fce=true needs the backbone's embedding width: the backbone has no "
                                 "`out_features`; set method.learner.feature_dim")
            self.fce = FullContextEmbedding(int(dim), fce_steps)

    def check(self, train: LabeledData) -> None:
        check_episode_shape(train.y, self.n_way, self.k_shot, self.n_query)

    def adapt(self, support_emb: Tensor, support_y: Tensor) -> MatchingScorer:
        n_way = int(support_y.max()) + 1
        if self.fce is not None:
            support_emb = self.fce.encode_support(support_emb.to(self.device))
            support_y = support_y.to(self.device)
        return MatchingScorer(support_emb, support_y, n_way, self.scale, self.fce)

    def concept_scorer(self, defining_emb: Tensor) -> ConceptMatchScorer:
        """A scorer of one concept from its (embedded) defining set, for the set-retrieval protocol."""
        support = defining_emb.to(self.device)
        if self.fce is not None:
            support = self.fce.encode_support(support)
        return ConceptMatchScorer(support, self.scale, self.fce)

    def episode_log_probs(self, support_emb: Tensor, support_y: Tensor, query_emb: Tensor) -> Tensor:
        return self.adapt(support_emb, support_y).score(query_emb)

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.check(train)
        report = fit_episodic(self, self.encoder, self.episode_log_probs, train, ctx, optimizer=self.optimizer,
                              iterations=self.iterations, n_way=self.n_way, k_shot=self.k_shot,
                              n_query=self.n_query, name="matching_fce" if self.fce is not None else "matching",
                              loss=F.nll_loss)
        report.notes.update(fce=self.fce is not None, scale=self.scale,
                            fce_steps=None if self.fce is None else self.fce.steps)
        return report
