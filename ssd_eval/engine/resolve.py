"""Concrete files for the model and data a run config names, fetched into the cache when allowed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.errors import ConfigError


@dataclass(frozen=True)
class ResolvedAssets:
    """Concrete files for the model and data named by a config."""

    model: Path
    model_source: str | None
    annotation_file: Path
    image_dir: Path


def resolve_assets(config: RunConfig, *, progress: bool = True) -> ResolvedAssets:
    """Model and data files for a config, fetching known sources into the cache when allowed."""
    if config.model.path is not None:
        model, model_source = config.model.path, None
    else:
        model, model_source = _model_from_source(config, progress=progress), config.model.source
    root = config.dataset.root
    if root is None:
        root = _data_from_source(config, progress=progress)
    return ResolvedAssets(
        model=model,
        model_source=model_source,
        annotation_file=root / config.dataset.annotations,
        image_dir=root / config.dataset.images,
    )


def resolve_data(config: RunConfig, *, progress: bool = True, images: bool = True) -> tuple[Path, Path]:
    """The annotation file and image folder of a config (no model involved).

    `images=False` is for the paths that read no pixels (score, merge, compare): a known data set is
    then fetched without its images (253 MB of annotations instead of 1 GB), and the image folder
    returned may not exist.
    """
    root = config.dataset.root
    if root is None:
        root = _data_from_source(config, progress=progress, images=images)
    return root / config.dataset.annotations, root / config.dataset.images


def _cache_dir(config: RunConfig) -> Path:
    from ssd_eval.assets.fetch import cache_home

    return cache_home(config.assets.cache)


def _model_from_source(config: RunConfig, *, progress: bool) -> Path:
    source = str(config.model.source)
    cache = _cache_dir(config)
    if source.startswith("twin-"):
        from ssd_eval.twin.model import ensure_twin

        size_text = source.removeprefix("twin-")
        if not size_text.isdigit():
            raise ConfigError(f"model.source {source!r}: a twin is named twin-<image size>, e.g. twin-1200")
        return ensure_twin(int(size_text), 0, cache / "twins")
    from ssd_eval.assets.fetch import downloads_allowed, ensure_model

    return ensure_model(
        source,
        cache=cache,
        allow_download=downloads_allowed(config.assets.download),
        mirror=config.assets.mirror,
        progress=progress,
    )


def _data_from_source(config: RunConfig, *, progress: bool, images: bool = True) -> Path:
    source = str(config.dataset.source)
    cache = _cache_dir(config)
    if source.startswith("synthetic-"):
        from ssd_eval.twin.synthetic import ensure_synthetic_dataset

        return ensure_synthetic_dataset(source, cache=cache)
    if source != "coco-val2017":
        raise ConfigError(f"dataset.source {source!r} is not known (known: coco-val2017, synthetic-<size>)")
    from ssd_eval.assets.fetch import downloads_allowed, ensure_coco_val2017, ensure_coco_val2017_annotations

    fetch = ensure_coco_val2017 if images else ensure_coco_val2017_annotations
    return fetch(
        cache=cache,
        allow_download=downloads_allowed(config.assets.download),
        mirror=config.assets.mirror,
        progress=progress,
    )
