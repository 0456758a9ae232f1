pytest_plugins = [
    "tests.rig.channel_fixtures",
    "tests.rig.docker_fixtures",
    "tests.rig.hub_fixtures",
    "tests.lock_fixtures",
]
