"""Finished tasks: pushing them to the Hub (with a record of what each branch holds), finding and loading them back, their model cards."""
