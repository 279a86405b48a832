"""The DSL: a clean-room BARC ``common`` library that programs use with ``from common import *``.

The template preloads ``arc_sandbox.dsl.common`` and registers it as the top-level module ``common``.
May import: the standard library, numpy and scipy.ndimage only (it runs inside every worker).
"""
