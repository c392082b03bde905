"""The user-facing failures: the CLI turns each into one line and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3  # a bug in ssd_eval, not in the input: report it


class SsdEvalError(Exception):
    """A failure the user can fix: bad config, missing file, unavailable provider (exit 2).

    The message is the whole story: what went wrong, where (file, key, image) and what to do.
    """

    exit_code = EXIT_USAGE


class ConfigError(SsdEvalError):
    """The YAML config (or a CLI override of it) is invalid."""


class ModelError(SsdEvalError):
    """The ONNX model is missing, unreadable or has the wrong signature."""


class DatasetError(SsdEvalError):
    """The annotation file or an image is missing or unreadable."""


class ProviderError(SsdEvalError):
    """An execution provider is unknown, unavailable, or silently fell back to CPU."""


class OutputError(SsdEvalError):
    """The output folder cannot be written, or a run there would be overwritten."""


class AssetError(SsdEvalError):
    """A model or data set could not be fetched or verified."""


class ComparisonError(SsdEvalError):
    """Run folders that cannot be compared: another image protocol or ground truth, or unfinished."""


class DetectionsFileError(SsdEvalError):
    """A file of detections made elsewhere (a COCO results file, an MLPerf accuracy log) has a bad
    record or entry, or does not fit the images it is imported for."""
