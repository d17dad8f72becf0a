"""The product's composition root: what ``siptwin up`` starts, and what the suite starts too.

- :mod:`.config`: :class:`TwinConfig` and the :class:`Twin` type every backend implements;
- :mod:`.nodes`: the one wiring of region nodes (embedded twin, region and worker processes);
- :mod:`.embedded`: everything in one process; :mod:`.workers` and :mod:`.worker_process`:
  ``--workers N``; :mod:`.region_process`: one region in its own process;
- :mod:`.backends`: the process, netns and docker backends; :mod:`.launch` makes any of them;
- :mod:`.locations`: caller locations (a round-trip time to every edge).

Imports every product package below it; never :mod:`siptwin.harness`.
"""
