"""The base layer: what every other part of vggnet stands on, importing nothing of vggnet above it.

``configs`` (the paper's Table 1 as data), ``shape`` (:class:`ModelShape`, what shapes a VGG's weights),
``normalization`` (the input weights expect), ``settings`` (settings that carry their own flags), ``files`` (atomic
writes, locks, safetensors, the cache folder), ``download`` (files fetched with timeouts), ``devices``, ``hardware``
(the CPU, read in one place), ``timing`` (the one harness that times things in turns) and ``pictures`` (PNG
encoding). These modules may import each other and third-party packages only.
"""
