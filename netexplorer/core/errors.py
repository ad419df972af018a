"""Errors a user can cause and fix. Their message is the one line the CLI prints and the app
shows in a dialog or status line: it says what was wrong and what to do."""

from __future__ import annotations


class NetExplorerError(Exception):
    """Base class: a problem with the user's input, not a bug in netexplorer."""


class SourceError(NetExplorerError):
    """A source (file, folder, example, factory) cannot be opened."""


class UntrustedPickleError(SourceError):
    """Opening the file would run code from it; the user has not said they trust it."""


class UnknownPathError(NetExplorerError):
    """A module or tensor path that the tree does not have."""


class PassError(NetExplorerError):
    """A forward, backward or optimizer step failed; the model stays as it was."""
