"""Running the task sequence: the continual loop, checkpoints, resume rules, results, processes, console, trackers, timing."""
