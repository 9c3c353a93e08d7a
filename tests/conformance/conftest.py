# moto's own suite is run by test_moto_ecs_suite.py in its own pytest process, against its own
# control plane; collected here it would run against in-process moto mocks and prove nothing.
collect_ignore = ["moto_ecs_suite"]
