"""Business rules. Resources call services; services call repositories and own commits."""
