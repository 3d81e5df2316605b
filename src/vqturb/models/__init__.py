"""Equinox modules: conv trunk, quantizers, VQVAE2d, VARVQVAE2d, the NSP transformer. No I/O."""
