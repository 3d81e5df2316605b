"""Shape-annotated array aliases shared across the package (jaxtyping).

Convention: fields are ``[batch, height, width]`` float32 (normalised vorticity); the conv trunk
works in NHWC (``[batch, height, width, channels]``), which XLA:CPU convolves faster than NCHW
(DESIGN.md, "Speed").
"""

from jaxtyping import Array, Float, Int

Field = Float[Array, "height width"]
FieldBatch = Float[Array, "batch height width"]
Features = Float[Array, "batch height width channels"]
Codes = Int[Array, "batch h w"]

__all__ = ["Array", "Codes", "Features", "Field", "FieldBatch", "Float", "Int"]
