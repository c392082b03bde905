"""Configuration: strict YAML schemas as frozen dataclasses (run and comparison configs)."""
