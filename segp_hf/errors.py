"""The error a user fixes in a recipe or on the command line (``segp-hf`` prints it as one line, exit 2)."""

from __future__ import annotations


class RecipeError(ValueError):
    """A recipe or command-line setting the user has to fix."""
