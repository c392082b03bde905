"""Assets: the known model and data sources, verified resumable downloads and the cache."""
