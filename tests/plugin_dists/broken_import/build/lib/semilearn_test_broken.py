"""A plugin whose import fails, as one with a missing dependency would."""

import semilearn_dependency_that_is_not_installed  # noqa: F401

Broken = None
