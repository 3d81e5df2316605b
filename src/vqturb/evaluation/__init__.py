"""NSP rollouts, decoding, token and physics metrics, figures, videos and the HTML report."""
