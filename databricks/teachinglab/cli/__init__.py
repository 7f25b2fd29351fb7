"""Argument parsing, the command registry, configuration, the clock, logging and locking: the only layer that reads the clock or the environment."""
