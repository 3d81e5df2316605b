"""NSP rollout throughput vs the generator's solver (same as `vqturb bench rollout`).

Usage: .venv/bin/python benchmarks/bench_rollout.py [flags of `vqturb bench rollout`]
Prints one JSON line: token_frames_per_s, decoded_frames_per_s, solver_frames_per_s, ratios.
"""

import sys

from vqturb.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "rollout", *sys.argv[1:]]))
