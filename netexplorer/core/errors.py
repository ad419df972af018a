"""Errors a user can cause and fix. Their message is the one line the CLI prints and the app
shows in a dialog or status line: it says what was wrong and what to do."""

from __future__ import annotations


class NetExplorerError(Exception):
    """Base class: a problem with the user's input, not a bug in netexplorer."""


class SourceError(NetExplorerError):
    """A source (file, folder, example, factory) cannot be opened."""


class UntrustedPickleError(SourceError):
    """Opening the file would run code from it; the user has not said they trust it.

    `globals_needed` names the Python callables its pickle calls (`posix.system`,
    `torch.nn.modules.linear.Linear`); `compiled_code` is true for TorchScript, whose
    archive carries code of its own. The app's trust question shows both."""

    def __init__(
        self, message: str, *, globals_needed: tuple[str, ...] = (), compiled_code: bool = False
    ) -> None:
        super().__init__(message)
        self.globals_needed = tuple(globals_needed)
        self.compiled_code = compiled_code


class UnknownPathError(NetExplorerError):
    """A module or tensor path that the tree does not have."""


class PassError(NetExplorerError):
    """A forward, backward or optimizer step failed; the model stays as it was."""
