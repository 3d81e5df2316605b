"""Reading a ``tokens.npz`` (written by ``vqturb tokenizer save``) with clear errors.

The NSP trainer and the rollout evaluation each need a different view of the file; both start
here, so a missing, unreadable or incomplete file gives the same one-line error everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vqturb.errors import InputError


def read_tokens_file(
    path: str | os.PathLike, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """The ``required`` fields (and those of ``optional`` that are present) as NumPy arrays.

    Raises:
        InputError: the file is missing, is not a readable ``.npz`` (pickles are refused), or
            lacks a required field (all missing fields are named).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            path, None, "no such tokens file", "an .npz written by vqturb tokenizer save"
        )
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:
        raise InputError(path, None, f"unreadable ({e})", "an .npz tokens file") from None
    with z:
        missing = [f for f in required if f not in z.files]
        if missing:
            raise InputError(
                path,
                "tokens file fields",
                f"missing {', '.join(missing)}",
                f"all of {', '.join(required)} (written by vqturb tokenizer save)",
            )
        return {f: np.asarray(z[f]) for f in (*required, *optional) if f in z.files}
