"""Evaluation protocols: each takes a fitted learner and a split and returns metrics. Protocols compute
every metric; learners never do."""
