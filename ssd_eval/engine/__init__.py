"""The run engine: one loop over the images for runs and comparisons, run folders, resume, score, merge."""
