"""A plugin with a misspelt hook point."""

from semilearn import Hook, hookimpl


class BadHook(Hook):
    @hookimpl
    def after_train_stepp(self, algorithm, step):  # noqa: ANN001 - the typo is the point
        pass
