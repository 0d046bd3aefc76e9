"""The control plane's client: how a notebook, or the kit, drives the services.

    from kit.control import deploy, call, protocol
    deploy(fetch, edge.pops)                         # a handler to every PoP
    call(edge.pops["pop-tokyo"], "GET", protocol.METRICS)

Modules: ``protocol`` (every control path, declared once; the services register
their routes from it), ``client`` (JSON over a service's Unix socket, or TCP on
loopback), ``deploy`` (handlers to PoPs, all-or-nothing). Handlers themselves
are written against ``kit.runtime``, which knows nothing of this package.
"""

from kit.control import protocol
from kit.control.client import UNIX, ControlError, call, check_target, connection, request
from kit.control.deploy import Deployed, DeployError, deploy, handler_source, undeploy

__all__ = [
    "UNIX",
    "ControlError",
    "DeployError",
    "Deployed",
    "call",
    "check_target",
    "connection",
    "deploy",
    "handler_source",
    "protocol",
    "request",
    "undeploy",
]
