"""The ECS control plane of the lab: task definitions registered as users do (aws CLI, boto3,
Terraform against :4566), scheduled and run as ECS would. See docs/control_plane.md."""
