"""Evaluation: the paper's protocols as tasks run by one shared runner."""
