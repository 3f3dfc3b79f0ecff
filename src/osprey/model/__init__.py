"""Osprey model components: vision encoder, mask extractor, projector, language model, splice."""

from osprey.model.osprey import OspreyModel, RegionBatch, build_model

__all__ = ["OspreyModel", "RegionBatch", "build_model"]
