"""The toolchain: the Pulumi engine and its Python plugins, Kafka, and their environment."""
