"""ossec.conf: reading, validating and the model the rest of ThreatLockDown uses."""

from .model import (
    ActiveResponse,
    AlertsConfig,
    Command,
    GlobalConfig,
    LocalFile,
    Located,
    OssecConfig,
    Remote,
    RulesetConfig,
    WhiteListEntry,
)
from .reader import default_config_path, load_config, read_config, read_config_text
from .serialize import to_jsonable

__all__ = [
    "ActiveResponse",
    "AlertsConfig",
    "Command",
    "GlobalConfig",
    "LocalFile",
    "Located",
    "OssecConfig",
    "Remote",
    "RulesetConfig",
    "WhiteListEntry",
    "default_config_path",
    "load_config",
    "read_config",
    "read_config_text",
    "to_jsonable",
]
