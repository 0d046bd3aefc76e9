"""The identity service on a world: a token issuer with its keys, and central auth.

    from kit.identity import start_identity

    idp = start_identity(world)              # on the origin's host, port 9000
    idp.jwks_url                             # what a PoP fetches: http://10.x:9000/...
    token = idp.mint(sub="ada")              # signed with the current key
    idp.mint(sub="ada", ttl_s=-60)           # already expired
    idp.rotate()                             # a new kid; the old key stays published
    idp.metrics()["jwks_fetches"]            # how often anyone fetched the keys

The glue between `kit.services.identity` (the service, whose docstring says what
it serves) and a world, like `kit.edge` for origins and PoPs. Minting, rotation
and config go over the service's control socket, so a notebook (which cannot
reach world addresses) drives it, and nothing on the network can rotate keys.
Users and PoPs reach its data plane at `idp.url` over the emulated network.
The service is the world's: `world.stop()` stops it; `idp.stop()` stops it earlier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit.control import call, protocol
from kit.net.procs import Service, wait_healthy
from kit.net.world import World

ISSUER = "https://id.edgelab.test"


class IdentityService:
    """A running identity service on one world host (see the module docstring)."""

    def __init__(self, world: World, host: str, port: int, service: Service, socket: Path) -> None:
        self.world, self.host, self.port, self.service = world, host, port, service
        self.target = f"unix:{socket}"
        self.issuer = ISSUER

    @property
    def url(self) -> str:
        """The data plane, e.g. ``http://10.1.20.2:9000`` (reachable from world hosts)."""
        return f"http://{self.world.ip(self.host)}:{self.port}"

    @property
    def jwks_url(self) -> str:
        return self.url + "/.well-known/jwks.json"

    @property
    def introspect_url(self) -> str:
        return self.url + "/introspect"

    @property
    def quota_url(self) -> str:
        return self.url + "/quota/take"

    def mint(
        self,
        sub: str = "anonymous",
        *,
        ttl_s: float | None = None,
        alg: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token for ``sub``, signed by the issuer; ``claims`` override any claim
        (``aud=``, ``iss=``, ``nbf=``...), ``headers`` the JOSE header."""
        body = {"claims": {"sub": sub, **claims}, "alg": alg, "headers": headers, "ttl_s": ttl_s}
        return call(self.target, "POST", protocol.IDENTITY_TOKEN, body)["token"]

    def rotate(self, retire_old: bool = False) -> str:
        """Sign with a new key from now on; returns its ``kid``."""
        return call(self.target, "POST", protocol.IDENTITY_ROTATE, {"retire_old": retire_old})[
            "kid"
        ]

    def keys(self) -> dict[str, Any]:
        """``{"signing": kid, "jwks": {"keys": [...]}}``."""
        return call(self.target, "GET", protocol.IDENTITY_KEYS)

    def config(self, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge ``changes`` (jwks_max_age_s, token_ttl_s, audience) and return the config."""
        if changes is None:
            return call(self.target, "GET", protocol.CONFIG)
        return call(self.target, "POST", protocol.CONFIG, changes)

    def metrics(self) -> dict[str, Any]:
        return call(self.target, "GET", protocol.METRICS)

    def reset_quota(self) -> None:
        call(self.target, "DELETE", protocol.QUOTA)

    def stop(self) -> None:
        self.world.stop_service(self.service)
        Path(self.target.removeprefix("unix:")).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"<IdentityService on {self.host}:{self.port}>"


def start_identity(
    world: World, host: str = "origin", port: int = 9000, alg: str = "RS256", timeout: float = 20.0
) -> IdentityService:
    """Start the identity service on ``host`` (default: next to the origin, in Ashburn)."""
    socket = Path(world.record.scratch) / f"{host}.identity.sock"
    socket.unlink(missing_ok=True)
    argv = ["python", "-m", "kit.services.identity", "--host", "0.0.0.0", "--port", str(port)]
    argv += ["--issuer", ISSUER, "--alg", alg, "--log-sample", "0", "--unix", str(socket)]
    service = world.launch_service(host, argv, name="identity", health_url=f"unix:{socket}")
    wait_healthy([service], timeout)
    return IdentityService(world, host, port, service, socket)
