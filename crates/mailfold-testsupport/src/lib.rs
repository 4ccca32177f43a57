//! mailfold-testsupport: private Dovecot and scripted servers for tests.
