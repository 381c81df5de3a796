"""The faces: the ``nodejobs`` command (``cli``) and what it shares with the ``%job`` magics: one
command table (``grammar``), what parsed arguments mean (``arguments``), what both do with ``Jobs``
(``actions``, ``waiting``). A face calls ``Jobs``; it never touches SQLite, files or signals."""
