"""Losses, jitted steps, EMA codebook updates, the loop, checkpoints and metric sinks."""
