"""The embedded benchmark: a tiny CLIP world that runs the whole study offline in minutes.

Tasks are rendered deterministically (one from scikit-learn's real digits), the tiny CLIP is
pretrained contrastively on a generated image-caption corpus, and both are cached. Importing this
package registers the pretrained weights as `ModelSpec("TinyCLIP", pretrained="embedded")` (and
"embedded-smoke" for the tests' preset); the tasks register through task_arithmetic.data.
"""

from .weights import register_weight_sources

register_weight_sources()
