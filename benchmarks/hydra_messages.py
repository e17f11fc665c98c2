"""Hydra's and OmegaConf's error messages in one line, for lists that name several problems at once (a
leaderboard's refused members, a search space's refused values). Hydra writes a missing option over many
lines (every option on its own line, then its config search path) and OmegaConf adds ``full_key`` and
``object_type`` lines; in a bulleted list those lines read as items of their own."""
from __future__ import annotations

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException


def missing_option(exc: MissingConfigException) -> str:
    """A config option that does not exist, with the options there are, its search path left out:
    "In 'config': Could not find 'backbone/conv5'; available options in 'backbone': conv4, mlp, ..."."""
    lines = [line.strip() for line in str(exc).split("Config search path")[0].splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.startswith("Available options")), None)
    if header is None:
        return lines[0]
    return f"{' '.join(lines[:header])}; {lines[header][0].lower()}{lines[header][1:]} {', '.join(lines[header + 1:])}"


def one_line(exc: Exception) -> str:
    """Hydra's and OmegaConf's messages in one line (``full_key`` kept in brackets, ``object_type`` left out);
    any other error's message as it is (this suite's own name the setting, over as many lines as it needs)."""
    if isinstance(exc, MissingConfigException):
        return missing_option(exc)
    if not isinstance(exc, (HydraException, OmegaConfBaseException)):
        return str(exc)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(line for line in lines if not line.startswith(("full_key:", "object_type=")))
    key = next((line.partition(":")[2].strip() for line in lines if line.startswith("full_key:")), "")
    return f"{text} (at {key})" if key else text
