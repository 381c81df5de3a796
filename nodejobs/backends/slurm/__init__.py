"""nodejobs.backends.slurm."""
