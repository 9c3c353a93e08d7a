"""`python -m lab.agent run|health|status`."""

from lab.agent.cli import agent

if __name__ == "__main__":
    agent(prog_name="agent")
