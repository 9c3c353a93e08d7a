from lab.world import Container, Task, World


def test_instance_identity_is_consistent():
    world = World()
    inst = world.add_instance("127.0.1.1")
    doc = inst.identity_document()
    assert doc["instanceId"] == inst.instance_id
    assert doc["privateIp"] == "127.0.1.1"
    assert doc["availabilityZone"].startswith(doc["region"])
    assert inst.hostname == "ip-127-0-1-1.ec2.internal"


def test_tasks_get_ecs_labels_and_are_found_by_token():
    world = World()
    inst = world.add_instance("127.0.1.1")
    task = world.add_task(inst, Task(family="web", revision=3, containers=[Container("app", "lab/app")]))
    c = task.container("app")
    assert c.labels["com.amazonaws.ecs.task-definition-family"] == "web"
    assert c.labels["com.amazonaws.ecs.task-definition-version"] == "3"
    assert world.find_container(metadata_token=c.metadata_token)[2] is c
    assert world.find_container(docker_id=c.docker_id[:12])[2] is c
