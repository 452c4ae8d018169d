"""The bottom layer: atomic file and directory writes (``io``), the generic config machinery (``config``:
YAML, ``key=value`` overrides, strict checks) and the named random streams of a run (``seeds``)."""
