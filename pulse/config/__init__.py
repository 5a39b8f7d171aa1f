"""Configuration loading: the pipeline YAML (`load`), its strict YAML reader (`strict_yaml`)
and the checks every section shares (`checks`). The types live in pulse.schemas.config."""
from .load import load_config

__all__ = ["load_config"]
