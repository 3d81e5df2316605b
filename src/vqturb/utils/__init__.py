"""Small shared helpers: atomic file writes, progress bars, JSON helpers."""
