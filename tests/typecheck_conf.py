"""The runtime type checker used in tests (``--jaxtyping-packages=vqturb,...``).

beartype with the PEP 484 numeric tower switched on, so an ``int`` is accepted where a ``float``
is annotated (as Python's own typing rules say). Imported only by the test suite; beartype is a
test dependency.
"""

from beartype import BeartypeConf, beartype

typechecker = beartype(conf=BeartypeConf(is_pep484_tower=True))
