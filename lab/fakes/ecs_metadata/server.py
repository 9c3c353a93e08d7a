"""The ECS metadata wire layer: aiohttp listeners that copy `EcsMetadata` answers onto HTTP.

One owner (`EcsMetadataServer`) runs every listener on one `ServerThread`: an introspection
listener per container instance (51678 on that instance's address tells instances apart, as on
EC2) and one task metadata listener (169.254.170.2:80 on EC2, a loopback port on the local
backend). Leaving the `with` block stops them all.
"""

from __future__ import annotations

from aiohttp import web

from lab.serving import Listener, ServerThread, listen_again, stop_listening
from lab.world import ContainerInstance, World

from .model import Answer, EcsMetadata
from .stats import StatsSource

# The lab's own route on the introspection port (no ECS agent path starts with /ecs-lab/).
CONFIG_PATH = "/ecs-lab/config"
_TRUE = ("true", "1", "yes")


# ecs.config setting -> the instance attribute it sets (all booleans).
_SETTINGS = {"ECS_ENABLE_CONTAINER_METADATA": "container_metadata_enabled",
             "ECS_AWSVPC_BLOCK_IMDS": "awsvpc_block_imds"}


def agent_config(instance: ContainerInstance) -> dict[str, str]:
    """The instance's ECS agent settings the lab models, as /etc/ecs/ecs.config writes them."""
    return {name: str(getattr(instance, attr)).lower() for name, attr in _SETTINGS.items()}


def apply_agent_config(instance: ContainerInstance, doc: object) -> None:
    """Set what `doc` names (only the settings of `agent_config`); anything else is an error, and
    nothing is set unless every value is valid."""
    if not isinstance(doc, dict):
        raise ValueError("the body must be a JSON object of ecs.config settings")
    unknown = set(doc) - set(_SETTINGS)
    if unknown:
        raise ValueError(f"unknown ECS agent setting(s) {sorted(unknown)}; known: {sorted(_SETTINGS)}")
    values = {}
    for name, raw in doc.items():
        value = str(raw).strip().lower()
        if value not in (*_TRUE, "false", "0", "no"):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        values[_SETTINGS[name]] = value in _TRUE
    for attr, value in values.items():
        setattr(instance, attr, value)


# Stats read /proc or ask the docker engine (a second or more): keep them off the event loop.
_SLOW_SUFFIXES = ("/stats",)


def _to_response(answer: Answer) -> web.Response:
    if answer.kind == "text":
        return web.Response(status=answer.status, text=str(answer.body), content_type="text/plain")
    # The ECS agent always answers JSON (errors too: a JSON-encoded message string).
    return web.Response(status=answer.status, body=answer.json_bytes(), content_type="application/json")


class EcsMetadataServer:
    """Owner of the introspection and task metadata listeners of one world."""

    def __init__(self, world: World, stats_source: StatsSource | None = None) -> None:
        self.world = world
        self.model = EcsMetadata(world, stats_source)
        self._server = ServerThread("ecs-metadata")
        self.introspection_listeners: dict[int, Listener] = {}
        self.task_metadata_listener: Listener | None = None

    # -- listeners ------------------------------------------------------------------------------
    def listen_introspection(self, host: str, port: int, instance: ContainerInstance) -> Listener:
        """ECS agent introspection of `instance` on host:port (51678 on EC2)."""
        model = self.model

        async def handle(request: web.Request) -> web.Response:
            # The ECS agent's handlers ignore the method (plain ServeMux HandleFuncs): so do we.
            return _to_response(model.introspection(instance, request.path, dict(request.query)))

        async def config(request: web.Request) -> web.Response:
            # The lab's stand-in for editing /etc/ecs/ecs.config and restarting the ECS agent.
            if request.method == "POST":
                try:
                    doc = await request.json()
                    apply_agent_config(instance, doc)
                except (ValueError, TypeError) as exc:
                    return web.json_response({"error": str(exc)}, status=400)
                self.world.touch()
            return web.json_response(agent_config(instance))

        app = web.Application()
        app.router.add_route("*", CONFIG_PATH, config)
        app.router.add_route("*", "/{tail:.*}", handle)
        listener = self._server.add_app(app, host, port)
        self.introspection_listeners[instance.index] = listener
        return listener

    def stop_introspection(self, index: int) -> None:
        """Instance `index`'s ECS agent is down (`systemctl stop ecs`): its introspection port refuses
        connections until `resume_introspection`. Tasks already running keep running, as on EC2."""
        listener = self.introspection_listeners[index]

        async def _stop() -> None:
            stop_listening(listener)

        self._server.call(_stop)

    def resume_introspection(self, index: int) -> None:
        """The ECS agent is back on the same address and port."""
        listener = self.introspection_listeners[index]
        self._server.call(lambda: listen_again(listener))

    def listen_task_metadata(self, host: str, port: int) -> Listener:
        """Task metadata v2/v3/v4, credentials and the agent API on host:port (169.254.170.2:80)."""
        model = self.model
        loop = self._server.loop

        async def handle(request: web.Request) -> web.Response:
            body = await request.read() if request.can_read_body else b""
            args = (request.method, request.path, dict(request.query), request.remote, body)
            if request.path.endswith(_SLOW_SUFFIXES):
                answer = await loop.run_in_executor(None, model.task_metadata, *args)
            else:
                answer = model.task_metadata(*args)
            return _to_response(answer)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self.task_metadata_listener = self._server.add_app(app, host, port)
        return self.task_metadata_listener

    @property
    def task_metadata_url(self) -> str:
        if self.task_metadata_listener is None:
            raise RuntimeError("listen_task_metadata() has not been called")
        return self.task_metadata_listener.url

    # -- lifetime -------------------------------------------------------------------------------
    def start(self) -> EcsMetadataServer:
        self._server.start()
        return self

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> EcsMetadataServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
