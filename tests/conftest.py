pytest_plugins = [
    # lock_fixtures first: hub_fixtures imports from it, and pytest rewrites asserts only in plugins it loads itself.
    "tests.lock_fixtures",
    "tests.rig.channel_fixtures",
    "tests.rig.docker_fixtures",
    "tests.rig.hub_fixtures",
    "tests.check_helpers",
]
