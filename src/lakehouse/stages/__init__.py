"""One function per state-machine state; handlers and the local runtime are thin shells over these."""
