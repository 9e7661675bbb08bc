"""The composition root: configuration, the running gateway, the command line, dev mode."""
