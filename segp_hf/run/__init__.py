"""Running the task sequence: the continual loop, checkpoints, resume rules, stopping on signals, the output directory's lock, results, processes, console, trackers, timing."""
