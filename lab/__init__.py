"""ecs-agent-lab: a local ECS world for proving a Datadog Agent setup before it reaches a cluster."""

__version__ = "0.1.0"
