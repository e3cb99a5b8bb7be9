pytest_plugins = [
    "tests.peers.certs",
]
