"""The local backend: each job a detached process group on this machine under the supervisor;
``backend`` (the Backend), ``launch`` (starting the supervisor), ``procs`` (finding and ending a run's
processes), ``usage`` (CPU and memory from ``/proc``), ``reaper`` (ends recorded as they come)."""
