"""Infrastructure: the topology's components and the substrates that run their nodes."""
