"""The engine: the backend-neutral life of a job. ``start`` (claim, submit held, record the handle,
release), ``observe`` (fold observed ends into the records), ``stop``; ``Lifecycle`` is its entry point.
It decides every status and holds of a run only the backend's opaque handle."""
