"""Edge Lab: an interactive textbook and lab kit on edge computing architecture.

The layers (see ARCHITECTURE.md), each a sub-package, lowest first:

- ``kit.runtime``  the edge runtime API learners program against
- ``kit.services`` small aiohttp services that run on world hosts
- ``kit.net``      the emulated world on Mininet
- ``kit.edge``     the services started on a world (origins, PoPs), controlled
                   over their sockets: the glue above ``kit.net`` and ``kit.services``
- ``kit.load``     Locust load tests, run as subprocesses
- ``kit.nb``       notebook helpers: plots, widgets, checks

No layer imports a layer above it.
"""
