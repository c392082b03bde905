"""Evaluation: COCOeval scoring, the detection log, agreement between runs."""
