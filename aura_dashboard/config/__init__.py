"""Configuration: the typed schema, the loader and the runtime overrides."""

from .loader import ConfigError, LoadedConfig, load_config, load_settings, redacted
from .overrides import FeatureChange, RuntimeOverrides, UnknownFeature
from .schema import Settings

__all__ = [
    "ConfigError", "FeatureChange", "LoadedConfig", "RuntimeOverrides", "Settings",
    "UnknownFeature", "load_config", "load_settings", "redacted",
]
