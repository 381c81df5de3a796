"""Python functions as jobs: ``api`` (submit, result, map_fn), ``executor`` (a
``concurrent.futures.Executor``), ``callfile`` (the call and result files), and ``python -m
nodejobs.functions CALL_FILE``, the program that runs in the job."""
