"""The emulated Datadog Agent: see docs/agent.md (`lab.agent.main.Agent`, `lab.agent.config.AgentConfig`)."""
