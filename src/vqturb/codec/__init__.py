"""Entropy-coded token files and the rate–distortion benchmark against classical compressors."""
