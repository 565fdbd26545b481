"""Finished tasks: pushing them to the Hub, finding and loading them back, their model cards."""
