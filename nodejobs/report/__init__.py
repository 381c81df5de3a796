"""What the faces show of jobs: their usage now (``usage``), a timeline picture, one wording of
summaries and durations."""
