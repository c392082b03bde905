"""The run pipeline per image: preprocess -> session -> decode, and the feeder threads."""
