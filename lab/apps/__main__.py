"""`python -m lab.apps ...`: the same commands as `ecs-lab app ...`, as the task definitions start them."""

from lab.apps.cli import app

if __name__ == "__main__":
    app(prog_name="python -m lab.apps")
