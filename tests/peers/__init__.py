"""Real peers for the tests: Dovecot, an aiosmtpd upstream, certificates, client programs."""
