pytest_plugins = [
    "tests.peers.certs",
    "tests.peers.smtp_upstream",
    "tests.peers.dovecot",
]
