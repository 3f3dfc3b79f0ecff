"""Inference: the region predictor (encode an image once, answer every region in one batch)."""
