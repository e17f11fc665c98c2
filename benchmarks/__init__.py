"""Protocols, the Hydra runner, records, leaderboard, figures and the regression check."""
