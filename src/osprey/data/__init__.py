"""Data: the internal sample format, mask decoding, one parser per source, mixtures and data tools.

Import submodules directly (``osprey.masks``, ``osprey.data.parsers``...); this package module
stays empty so that importing one part does not load the others.
"""
