"""The docker substrate: every node of a topology as a container, made with pulumi-docker."""
