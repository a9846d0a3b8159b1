"""Configuration: ``Settings`` from the environment, and the persisted-documents manifest."""

from gateway.config.manifest import bare_id, load_manifest
from gateway.config.reading import EMBEDDED
from gateway.config.settings import Settings, SettingsError

__all__ = ["EMBEDDED", "Settings", "SettingsError", "bare_id", "load_manifest"]
