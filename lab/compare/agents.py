"""What `--baseline` / `--candidate` name, and the environment that makes a pytest run use it.

An AGENT is one of:
- `emulated`: the lab's emulated agent (the lab image, `ecs-agent-lab/lab:latest`), default timing;
- `emulated:<profile>`: the emulated agent with a timing profile (`LAB_AGENT_PROFILE`), e.g.
  `emulated:real-timing` (the real agent's 15 s flush);
- an image reference (`public.ecr.aws/datadog/agent:7.60.0`,
  `ecs-agent-lab/agent-serverless-compat:0.19.0`): `LAB_AGENT_IMAGE`, as the backends read it.
Extra agent settings (`--candidate-env DD_USE_DOGSTATSD=false`) reach the agents through
`LAB_AGENT_ENV`, which the capture plugin applies to every stack the run starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from lab.compare.capture import AGENT_ENV_VAR, AGENT_INFO_VAR

EMULATED = "emulated"
PROFILES = ("real-timing",)
# The variables that choose an agent: cleared for each run so the caller's shell cannot leak into one side.
AGENT_CHOICE_VARS = ("LAB_AGENT_IMAGE", "LAB_AGENT_PROFILE", "LAB_AGENT_COMMAND", AGENT_ENV_VAR)
# docker's reference grammar, loosely: [registry[:port]/]path[:tag][@digest]
_IMAGE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
                    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AgentSpecError(ValueError):
    """An AGENT argument that names no agent."""


@dataclass(frozen=True)
class AgentSpec:
    spec: str
    image: str | None = None
    profile: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def run_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` (the caller's environment) with this agent chosen and nothing else's choice left."""
        env = {k: v for k, v in base.items() if k not in AGENT_CHOICE_VARS}
        if self.image:
            env["LAB_AGENT_IMAGE"] = self.image
        if self.profile:
            env["LAB_AGENT_PROFILE"] = self.profile
        if self.env:
            env[AGENT_ENV_VAR] = json.dumps(dict(self.env), sort_keys=True)
        env[AGENT_INFO_VAR] = json.dumps(self.describe(), sort_keys=True)
        return env

    def describe(self) -> dict[str, object]:
        return {"spec": self.spec, "image": self.image, "profile": self.profile,
                "env": " ".join(f"{k}={v}" for k, v in sorted(self.env.items()))}


def parse_env_pairs(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.match(key):
            raise AgentSpecError(f"{pair!r} is not KEY=VALUE (e.g. DD_USE_DOGSTATSD=false)")
        env[key] = value
    return env


def parse_agent(text: str, env: Mapping[str, str] | None = None) -> AgentSpec:
    text = text.strip()
    env = dict(env or {})
    if text == EMULATED:
        return AgentSpec(text, env=env)
    if text.startswith(EMULATED + ":"):
        profile = text.split(":", 1)[1]
        if profile not in PROFILES:
            raise AgentSpecError(f"unknown emulated agent profile {profile!r}; known: {', '.join(PROFILES)}")
        return AgentSpec(text, profile=profile, env=env)
    if _IMAGE.match(text):
        return AgentSpec(text, image=text, env=env)
    raise AgentSpecError(f"{text!r} is not an agent: use `emulated`, `emulated:<profile>` "
                         f"({', '.join(PROFILES)}) or an image reference such as "
                         "public.ecr.aws/datadog/agent:7")
