"""Offline checks of deploy/, examples/ and the Dockerfile: no cluster, no docker engine."""
