"""Protocols, the Hydra runner, records, leaderboard, figures and the regression check."""

from omegaconf import OmegaConf

VALIDATION_TAG = "@validation"  # appended to the protocol's name in records and run folders of validation runs


def _split_tag(validation) -> str:
    return VALIDATION_TAG if str(validation).lower() == "true" else ""


# conf/config.yaml's run_dir uses it: a validation run never shares a folder (or a table) with a test run
OmegaConf.register_new_resolver("split_tag", _split_tag, replace=True)


def named_yaml(folder, name: str):
    """The plan ``name`` as a path: ``<folder>/<name>.yaml``, or ``name`` itself when it is a yaml file path.
    Returns (path, the known names in ``folder``) so a caller can say which exist when it does not."""
    from pathlib import Path

    folder = Path(folder)
    path = Path(name) if name.endswith((".yaml", ".yml")) else folder / f"{name}.yaml"
    return path, sorted(p.stem for p in folder.glob("*.yaml"))
