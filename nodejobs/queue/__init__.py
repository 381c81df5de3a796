"""The daemonless queue: queued jobs wait for a slot, their dependencies or their start time;
``dispatcher`` starts what may start in one transaction, ``handoff`` gives a backend what it can keep
itself (Slurm's dependencies), ``timers`` wake a delayed start, ``python -m nodejobs.queue DB`` is the
detached step a job's end runs."""
