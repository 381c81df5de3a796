"""The Slurm backend: each job one Slurm batch job whose script is the supervisor; ``backend`` (the
Backend), ``cli`` (one function per Slurm command), ``script`` (batch scripts and sbatch options),
``states`` (Slurm's states in ours)."""
