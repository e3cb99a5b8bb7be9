pytest_plugins = [
    "tests.peers.certs",
    "tests.peers.dovecot",
]
