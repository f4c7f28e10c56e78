"""Shared infrastructure: errors a user can fix, the entry points' error handling, pixel ranges, files and locks, processes, devices, compilation, results."""
