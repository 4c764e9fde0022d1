"""Configuration: the schema (:mod:`.schema`, a frozen dataclass per section), the
[[actions]] tables (:mod:`.actions`) and the loader (:mod:`.load`). It imports no domain
module: the sections are plain data that every room reads."""

from .actions import Action, Http, parse_actions
from .fields import opt
from .llm import LLM
from .load import ENV_VAR, SYSTEM_CONFIG, default_config_path, find_config, load_config
from .schema import (
    API,
    SEED_VAR,
    Config,
    Kiosk,
    Paths,
    Service,
    Speech,
    Thermal,
    Voice,
    Wyoming,
    data_dir,
    env_seed,
    is_loopback,
)

__all__ = [
    "API",
    "ENV_VAR",
    "LLM",
    "SEED_VAR",
    "SYSTEM_CONFIG",
    "Action",
    "Config",
    "Http",
    "Kiosk",
    "Paths",
    "Service",
    "Speech",
    "Thermal",
    "Voice",
    "Wyoming",
    "data_dir",
    "default_config_path",
    "env_seed",
    "find_config",
    "is_loopback",
    "load_config",
    "opt",
    "parse_actions",
]
